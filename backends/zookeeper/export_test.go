package zookeeper

import "github.com/go-zookeeper/zk"

// SetBeforeRead sets the hook run between an event and the read it causes
// (nil removes it). Tests only; not safe to change while watches run.
func SetBeforeRead(f func(zk.Event)) { beforeRead = f }

// SetDialer sets the dialer of the clients New makes from now on (nil:
// net.DialTimeout). Tests only.
func SetDialer(d zk.Dialer) { dialer = d }
