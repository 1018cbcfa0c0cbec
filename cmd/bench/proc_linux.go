package main

import "syscall"

// childAttr makes children die with the bench, even on SIGKILL.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
