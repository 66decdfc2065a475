package storetest

// accountsTests are the contract cases for the store.Accounts methods.
var accountsTests = []contractTest{}
