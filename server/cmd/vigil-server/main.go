// Command vigil-server is the Vigil server. This first version only
// reports its version; the store, scheduler, API and UI land with the
// server core issue.
package main

import (
	"fmt"
	"os"

	"github.com/vigilfleet/vigil/shared/version"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "version") {
		fmt.Println("vigil-server", version.String())
		return
	}
	fmt.Fprintln(os.Stderr, "usage: vigil-server --version (the server arrives with the server core issue)")
	os.Exit(2)
}
