package storetest

// inventoryTests are the contract cases for the store.Inventory methods.
var inventoryTests = []contractTest{}
