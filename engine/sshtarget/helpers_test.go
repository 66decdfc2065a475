package sshtarget

import (
	"io"
	"syscall"
)

func errConnRefused() error { return syscall.ECONNREFUSED }
func errEOF() error         { return io.EOF }
