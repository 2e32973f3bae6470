// SPDX-License-Identifier: MIT
//
// A Go net/http server (standard library only) for test_kernel_go.sh: Go's
// runtime makes its epoll calls as raw syscalls, so the shim's recorder
// never starts in it and it is dumped from the kernel's view alone.
// Listens on 127.0.0.1:0 and prints "ready PORT".
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	})
	fmt.Printf("ready %d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
