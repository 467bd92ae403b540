// Most of this suite waits: for a daemon to start, for a timeout to run out, for a client on the other side of a
// namespace. Each test has its own network namespace, daemon, MX and directory, so fixtures run side by side and the
// run takes about half as long. A fixture that measures time or CPU against a bound, spins the cores, or changes
// something host-wide (/etc/subuid, the package, a container) is [NonParallelizable]: NUnit runs it alone
// (SubordinateUidLine refuses to edit /etc/subuid for any other). The daemons here share the machine's CPU pressure,
// which paces a user flooding among others: a parallel fixture whose users both send must not bound their time.
[assembly: Parallelizable(ParallelScope.Fixtures)]
[assembly: LevelOfParallelism(4)]
