//go:build !embedagent

package initramfs

// embeddedAgent is empty without the embedagent build tag (go run, go
// test): the agent is compiled from the checkout on every start.
var embeddedAgent []byte
