using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Interceptor.Core.Decide;
using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Attribute;
using Interceptor.Daemon.Control;
using Interceptor.Daemon.Decide;
using Interceptor.Daemon.Hosting;
using Interceptor.Daemon.Intercept;
using Interceptor.Daemon.Record;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Interceptor.Store;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// `smtp-interceptor run`: open the state, bind the loopback listeners, install and verify the nft table
/// (with the stored suspensions), relay until SIGTERM, and leave the table in place on the way out (fail closed).
/// </summary>
public static class RunCommand
{
    private static readonly TimeSpan ShutdownGrace = TimeSpan.FromSeconds(10);

    public static async Task<int> RunAsync(Arguments arguments, ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger("smtp-interceptor");

        // First: it takes NOTIFY_SOCKET out of the environment so that no child (nft) can speak for us.
        await using var systemd = SystemdNotifier.FromEnvironment(logger);

        // Before anything else: a SIGTERM that arrives right after "ready" must stop us cleanly, not kill us.
        var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        var (options, spec) = DaemonSetup.Load(arguments.ConfigPath);
        var descriptorLimit = RaiseDescriptorLimit(logger);
        var rules = new RulesetManager(new NftClient());
        var alert = new AlertCommand(options.Alerts, loggers.CreateLogger("alert"));

        // Issue 12.1: a port any user may bind is a port a customer can take while we are down; refuse it, and make sure
        // the redirect the boot unit (or an earlier run) installed does not point at it.
        if (ListenerGuard.UnprivilegedPortProblem(options.Listen.Port) is { } unprivileged)
        {
            logger.LogCritical("refusing to run: {Reason}", unprivileged);
            await LockDownAsync(rules, spec, new ListenerProblem(unprivileged, null, null), alert, logger);
            return 1;
        }

        var time = TimeProvider.System;
        var startedAt = time.GetUtcNow();

        SqliteStateStore store;
        try
        {
            store = SqliteStateStore.Open(options.State.Directory, time, loggers.CreateLogger("store"));
        }
        catch (StoreUnavailableException e)
        {
            logger.LogCritical("cannot open the state store: {Reason}", e.Message);
            return 3;
        }

        await using var _ = store;

        // Sized once the runtime, the assemblies and the store hold their descriptors, before any connection can.
        if (!DescriptorBudget.TryPlan(descriptorLimit, DescriptorLimit.CountOpen(), options.Listen.MaxConnections, options.Relay.ReuseConnections, out var budget, out var budgetError))
        {
            logger.LogCritical("cannot run within the file descriptor limit: {Reason}", budgetError);
            return 3;
        }

        if (budget.Warning is not null)
        {
            logger.LogWarning("{Warning}", budget.Warning);
        }

        logger.LogInformation(
            "file descriptors: limit {Limit}, {Open} open at start, {Reserve} reserved, up to {Sessions} SMTP sessions (Listen.MaxConnections) × {PerSession} and {Idle} idle upstream sessions: at most {Needed}",
            budget.Limit, budget.OpenAtStart, DescriptorBudget.Reserve, budget.Sessions, DescriptorBudget.PerSession, budget.IdleUpstreams, budget.Needed);
        options = options with { Listen = options.Listen with { MaxConnections = budget.Sessions } };
        using var metrics = new DaemonMetrics(options.Metrics.PerUser);
        var ledger = new QuotaLedger(time);
        var restored = await RestoreUsageAsync(store, ledger, time);
        var autoSuspension = new AutoSuspensionRules(options.Suspension, time);
        // Sub-UIDs (/etc/subuid) are charged to their owner and suspended with her, in the kernel too (12.4).
        var subordinates = new SubordinateUidFile(SubordinateUidFile.DefaultPath, loggers.CreateLogger("attribute"));
        var suspendedSets = new SuspendedUidSets(subordinates);
        SuspensionRegistry? registry = null;
        using var kernel = new NftKernelSuspension(rules, spec.Table, suspendedSets, () => registry?.All.Select(s => s.Uid) ?? []);
        var suspensions = registry = new SuspensionRegistry(store, kernel, alert);
        var suspended = await suspensions.LoadAsync(CancellationToken.None);
        spec = suspendedSets.Apply(spec, suspended.Select(s => s.Uid));
        var policy = new MailPolicy(options.Limits, ledger, autoSuspension, suspensions, store, time, loggers.CreateLogger("policy"), metrics.Policy);

        using var owners = new SocketOwnerLookup();
        using var conntrack = new ConntrackLookup();
        var hostAddresses = new HostAddresses();
        var destinations = new DestinationPolicy(
            options.Listen.Port,
            options.Relay.PermittedLocalDestinations.Select(IPEndPoint.Parse),
            hostAddresses.Current);
        var attributeLogger = loggers.CreateLogger("attribute");
        await using var refusals = new RefusalLog(attributeLogger, TimeSpan.FromSeconds(options.Interception.RefusalSummarySeconds), time);
        refusals.Start();
        var attributor = new ConnectionAttributor(owners, destinations, attributeLogger, refusals, metrics.Attribution, conntrack)
        {
            Uids = new UidAttribution(subordinates, options.Attribution.UnknownUids, attributeLogger, metrics.Attribution),
            Scope = RedirectScope.Of(spec),
        };
        var recorder = new CompositeRecorder(new LogTransactionRecorder(loggers.CreateLogger("record")), metrics.Relay);
        await using var listener = new InterceptListener(options, attributor, recorder, loggers.CreateLogger("session"), policy, new ProcessAttribution());
        metrics.Relay.Upstreams = listener.Upstreams;
        metrics.Store.Health = () => store.Health;
        metrics.Intercept.ActiveSessions = () => listener.ActiveSessions;
        try
        {
            listener.Bind();
        }
        catch (SocketException e)
        {
            // Someone else holds the port (root or a CAP_NET_BIND_SERVICE process, the port being privileged): say who,
            // and take the redirect away from them.
            var holder = FindHolder(options.Listen.Port, logger);
            logger.LogCritical("cannot listen on port {Port}: {Reason}{Holder}", options.Listen.Port, e.Message, holder is null ? "" : "; " + holder.Reason);
            await LockDownAsync(rules, spec, holder ?? new ListenerProblem($"cannot listen on port {options.Listen.Port}: {e.Message}", null, null), alert, logger);
            return 3;
        }

        var listenerGuard = new ListenerGuard(options.Listen.Port, () => listener.Sockets, alert, loggers.CreateLogger("netfilter"));
        var lockdown = listenerGuard.FindProblem(null);
        await rules.InstallAsync(spec with { Lockdown = lockdown is not null }, CancellationToken.None);
        if (lockdown is not null)
        {
            await listenerGuard.ReportLockdownAsync(lockdown, spec.Table, spec.Ports, CancellationToken.None);
        }

        var context = new AdminContext(options, spec, rules, store, suspensions, autoSuspension, ledger, () => listener.ActiveSessions, startedAt, time, owners.Method.ToString())
        {
            SuspendedSets = suspendedSets,
        };
        await using var control = new ControlServer(context, loggers.CreateLogger("control"));
        try
        {
            control.Start();
        }
        catch (ControlSocketException e)
        {
            logger.LogCritical("cannot open the control socket: {Reason}", e.Message);
            return 3;
        }
        // Before the listener accepts and the store is pruned: what happens before an exporter listens is not counted.
        await using var metricsServer = options.Metrics.Listen.Length == 0
            ? null
            : new MetricsEndpoint(IPEndPoint.Parse(options.Metrics.Listen), metrics.Sources, loggers);
        if (metricsServer is not null)
        {
            await metricsServer.StartAsync(CancellationToken.None);
        }

        await using var retention = new StoreRetention(store, options.State, time, loggers.CreateLogger("store"), alert.NotifyStorePrunedAsync, metrics.Store);
        retention.Start();
        await using var watchdog = new TableWatchdog(rules, spec, suspensions, TimeSpan.FromSeconds(options.Interception.VerifyIntervalSeconds), loggers.CreateLogger("netfilter"), listenerGuard, lockdown)
        {
            SuspendedSets = suspendedSets,
        };
        metrics.Intercept.Watchdog = watchdog;
        watchdog.Start();
        listener.Start();
        logger.LogInformation(
            new EventId(1, "Ready"),
            "ready: listening on {Endpoints}; table inet {Table} verified, intercepting ports {Ports}, exempt uids {ExemptUids}, suspended uids {SuspendedUids}; owner lookup via {LookupMethod}; state {StatePath} ({Restored} deliveries of the last 24 h restored); control socket {ControlSocket}{Metrics}",
            string.Join(" ", listener.Endpoints),
            spec.Table,
            string.Join(",", spec.Ports),
            string.Join(",", spec.ExemptUids),
            spec.SuspendedUids.Count == 0 ? "none" : string.Join(",", spec.SuspendedUids),
            owners.Method,
            store.Path,
            restored,
            control.SocketPath,
            metricsServer is null ? "" : $"; metrics on http://{options.Metrics.Listen}/metrics");
        systemd.Ready($"relaying: listening on {string.Join(" ", listener.Endpoints)}; table inet {spec.Table} verified, exempt uids {string.Join(",", spec.ExemptUids)}");
        systemd.StartWatchdog();

        await stop.Task;
        systemd.Stopping($"stopping: {listener.ActiveSessions} sessions still open");

        logger.LogInformation("stopping: {Sessions} sessions still open, {GraceSeconds} s to finish", listener.ActiveSessions, ShutdownGrace.TotalSeconds);
        await listener.StopAsync(ShutdownGrace);
        logger.LogInformation("stopped; table inet {Table} left in place, so port {Ports} stays closed to customers until the daemon is back (fail closed)", spec.Table, string.Join(",", spec.Ports));
        return 0;

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.TrySetResult();
        }
    }

    /// <summary>
    /// Raises the soft descriptor limit to the hard one (the unit's LimitNOFILE sets both; a shell usually gives a soft
    /// 1024) and returns the soft limit in force.
    /// </summary>
    private static long RaiseDescriptorLimit(ILogger logger)
    {
        try
        {
            var before = DescriptorLimit.Current();
            var after = DescriptorLimit.RaiseSoftToHard();
            if (after.Soft != before.Soft)
            {
                logger.LogInformation("file descriptor limit raised from {Before} to the hard limit {After}", before.Soft, after.Soft);
            }

            return (long)Math.Min(after.Soft, (ulong)int.MaxValue);
        }
        catch (LinuxInteropException e)
        {
            var current = DescriptorLimit.Current();
            logger.LogWarning("cannot raise the file descriptor limit {Soft} to the hard limit {Hard}: {Reason}", current.Soft, current.Hard, e.Message);
            return (long)Math.Min(current.Soft, (ulong)int.MaxValue);
        }
    }

    /// <summary>
    /// The lockdown form of the table (no redirect; the guard table refuses), logged and alerted: the daemon cannot own its
    /// listener port, so nothing may be redirected to it. A failure to install it is logged; the exit code stays the same.
    /// </summary>
    private static async Task LockDownAsync(RulesetManager rules, RulesetSpec spec, ListenerProblem problem, AlertCommand alert, ILogger logger)
    {
        try
        {
            await rules.InstallAsync(spec with { Lockdown = true }, CancellationToken.None);
            logger.LogError(
                new EventId(12, "Lockdown"),
                "lockdown: {Reason}; table inet {Table} installed without its redirect: ports {Ports} are refused to non-exempt users until smtp-interceptor owns port {ListenPort}",
                problem.Reason, spec.Table, string.Join(",", spec.Ports), spec.ListenPort);
        }
        catch (NetfilterException e)
        {
            logger.LogCritical("cannot install the lockdown table inet {Table}: {Reason}", spec.Table, e.Message);
        }

        await alert.NotifyListenerAsync("lockdown: " + problem.Reason, problem.Uid, problem.User, DateTimeOffset.UtcNow, CancellationToken.None);
    }

    private static ListenerProblem? FindHolder(int port, ILogger logger)
    {
        try
        {
            return ListenerGuard.ForeignListenerProblem(port, UserDatabase.EffectiveUid, new HashSet<ulong>());
        }
        catch (LinuxInteropException e)
        {
            logger.LogError("cannot list the sockets listening on port {Port}: {Reason}", port, e.Message);
            return null;
        }
    }

    /// <summary>A restart must not reset a quota: the last day's deliveries (and unfinished ones) count again.</summary>
    private static async Task<int> RestoreUsageAsync(SqliteStateStore store, QuotaLedger ledger, TimeProvider time)
    {
        var recent = await store.LoadTransactionsAsync(time.GetUtcNow().AddDays(-1), null, int.MaxValue, CancellationToken.None);
        var counted = 0;

        // The store returns the newest first; the ledger takes deliveries fastest in time order.
        foreach (var transaction in recent.Reverse())
        {
            if (TransactionEvent.CountsAsSent(transaction.Outcome))
            {
                ledger.AddDelivered(transaction.Uid, transaction.Started, transaction.RecipientCount);
                counted++;
            }
        }

        return counted;
    }
}
