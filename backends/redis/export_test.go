package redis

// KeyspaceFlags exports keyspaceFlags to the tests.
var KeyspaceFlags = keyspaceFlags
