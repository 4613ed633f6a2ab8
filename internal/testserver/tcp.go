package testserver

import "net"

// TCPService listens on a free loopback port and accepts every connection
// and closes it at once: a service a TCP health check finds up. It stops
// when the caller closes the listener.
func TCPService() (net.Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l, nil
}
