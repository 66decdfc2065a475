// Command vigil-agent is the Vigil agent daemon. This first version only
// reports its version; enrolment, assignment pull and result streaming land
// with the agent issue.
package main

import (
	"fmt"
	"os"

	"github.com/vigilfleet/vigil/shared/version"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "version") {
		fmt.Println("vigil-agent", version.String())
		return
	}
	fmt.Fprintln(os.Stderr, "usage: vigil-agent --version (the daemon arrives with the agent issue)")
	os.Exit(2)
}
