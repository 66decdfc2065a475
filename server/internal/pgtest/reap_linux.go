package pgtest

import (
	"syscall"
	"time"
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// adoptOrphans makes this process the parent of the postmaster once pg_ctl
// exits. Otherwise the postmaster is re-parented to PID 1, and under an
// init that does not reap (containers, microVMs) every test run would
// leave a zombie behind.
func adoptOrphans() {
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0) // best effort
}

// reap collects the exit status of the stopped postmaster, waiting at most
// five seconds; it does nothing if pid is not our child.
func reap(pid int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if got == pid || err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
