package storetest

// scheduleTests are the contract cases for the store.Scheduling methods.
var scheduleTests = []contractTest{}
