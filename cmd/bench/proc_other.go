//go:build !linux

package main

import (
	"os"
	"syscall"
)

func childAttr() *syscall.SysProcAttr { return nil }

// maxRSS is not measured where ru_maxrss differs in units.
func maxRSS(*os.ProcessState) int64 { return 0 }
