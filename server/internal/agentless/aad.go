package agentless

// AAD is the additional data that binds a sealed credential to its host;
// callers sealing through an interface (the API's Sealer) use it so that
// OpenCredential opens what they sealed.
func AAD(hostID int64) []byte { return aad(hostID) }
