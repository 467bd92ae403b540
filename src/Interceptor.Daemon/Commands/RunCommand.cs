using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Interceptor.Core.Decide;
using Interceptor.Core.Events;
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
        var metrics = new MetricsRegistry(options.Metrics.PerUser);
        var rules = new RulesetManager(new NftClient());
        var ledger = new QuotaLedger(time);
        var restored = await RestoreUsageAsync(store, ledger, time);
        var autoSuspension = new AutoSuspensionRules(options.Suspension, time);
        var alerts = new AlertCommand(options.Alerts, loggers.CreateLogger("alert"));
        var suspensions = new SuspensionRegistry(store, new NftKernelSuspension(rules, spec.Table), alerts);
        var suspended = await suspensions.LoadAsync(CancellationToken.None);
        spec = spec with { SuspendedUids = [.. suspended.Select(s => s.Uid)] };
        var policy = new MailPolicy(options.Limits, ledger, autoSuspension, suspensions, store, time, loggers.CreateLogger("policy"), metrics);

        using var owners = new SocketOwnerLookup();
        using var conntrack = new ConntrackLookup();
        var hostAddresses = new HostAddresses();
        var destinations = new DestinationPolicy(
            options.Listen.Port,
            options.Relay.PermittedLocalDestinations.Select(IPEndPoint.Parse),
            hostAddresses.Current);
        var attributor = new ConnectionAttributor(owners, destinations, loggers.CreateLogger("attribute"), metrics, conntrack);
        var recorder = new CompositeRecorder(new LogTransactionRecorder(loggers.CreateLogger("record")), metrics);
        await using var listener = new InterceptListener(options, attributor, recorder, loggers.CreateLogger("session"), policy, new ProcessAttribution());
        metrics.Upstreams = listener.Upstreams;
        try
        {
            listener.Bind();
        }
        catch (SocketException e)
        {
            logger.LogCritical("cannot listen on port {Port}: {Reason}", options.Listen.Port, e.Message);
            return 3;
        }

        await rules.InstallAsync(spec, CancellationToken.None);
        var context = new AdminContext(options, spec, rules, store, suspensions, autoSuspension, ledger, () => listener.ActiveSessions, startedAt, time, owners.Method.ToString());
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
        await using var metricsServer = options.Metrics.Listen.Length == 0
            ? null
            : new MetricsServer(IPEndPoint.Parse(options.Metrics.Listen), metrics, () => listener.ActiveSessions, loggers.CreateLogger("metrics"));
        metricsServer?.Start();
        await using var retention = new StoreRetention(store, options.State, time, loggers.CreateLogger("store"), alerts.NotifyStorePrunedAsync);
        retention.Start();
        await using var watchdog = new TableWatchdog(rules, spec, suspensions, TimeSpan.FromSeconds(options.Interception.VerifyIntervalSeconds), loggers.CreateLogger("netfilter"));
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
