package worker

// StartupWarnings is startupWarnings, for the tests of package worker_test.
var StartupWarnings = startupWarnings
