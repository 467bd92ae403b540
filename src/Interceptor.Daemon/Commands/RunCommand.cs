using System.Net;
using Interceptor.Core.Decide;
using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Attribution;
using Interceptor.Daemon.Configuration;
using Interceptor.Daemon.Control;
using Interceptor.Daemon.Decide;
using Interceptor.Daemon.Hold;
using Interceptor.Daemon.Domains;
using Interceptor.Daemon.Hosting;
using Interceptor.Daemon.Intercept;
using Interceptor.Daemon.Maintenance;
using Interceptor.Daemon.Metrics;
using Interceptor.Daemon.Pool;
using Interceptor.Daemon.Record;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Pool;
using Interceptor.Store;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// `smtp-interceptor run`: open the state and build the daemon's parts, then run them as the Generic Host's hosted services
/// (<see cref="DaemonHost"/>), in this order: bind the loopback listener, install and verify the nft table (with the stored
/// suspensions), the control socket, the metrics endpoint, the store's retention, accepting SMTP; then READY. SIGTERM
/// stops them in the reverse order, and the table stays in place on the way out (fail closed).
/// </summary>
public static class RunCommand
{
    public static async Task<int> RunAsync(Arguments arguments, ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger("smtp-interceptor");

        // First: it takes NOTIFY_SOCKET out of the environment so that no child (nft) can speak for us.
        using var systemd = SystemdNotifier.FromEnvironment(logger);
        var (options, spec) = DaemonSetup.Load(arguments.ConfigPath, relays: true);

        // A credentials or token file others may read is a configuration error (exit 1), before anything is installed.
        var credentials = DaemonPool.LoadCredentials(options.Relay);
        var metricsToken = MetricsToken.Load(options.Metrics);
        if (ReferencedFiles.SmarthostCaProblems(options.Relay) is { Count: > 0 } caProblems)
        {
            // Each relay's CA is loaded when the listener is built: name the key now rather than fail in there.
            throw new ConfigurationException(caProblems);
        }

        var descriptorLimit = RaiseDescriptorLimit(logger);
        var rules = new RulesetManager(new NftClient());
        var alert = new AlertCommand(options.Alerts, loggers.CreateLogger("alert"));

        // Issue 12.1: a port any user may bind is a port a customer can take while we are down; refuse it, and make sure
        // the redirect the boot unit (or an earlier run) installed does not point at it.
        if (ListenerGuard.UnprivilegedPortProblem(options.Listen.Port) is { } unprivileged)
        {
            logger.RefusingToRun(unprivileged);
            await ListenerBinding.LockDownAsync(rules, spec with { StrayLogGroup = 0 }, new ListenerProblem(unprivileged, null, null), alert, logger);
            return 1;
        }

        // Issue 18: the CA's key must be ours alone and usable before any client is offered STARTTLS.
        Interceptor.Smtp.Tls.ClientTlsServer? clientTls;
        try
        {
            clientTls = Interceptor.Smtp.Tls.ClientTlsServer.From(options.ClientTls, loggers.CreateLogger("client-tls"));
        }
        catch (Interceptor.Smtp.Tls.ClientTlsSetupException e)
        {
            logger.ClientCaUnusable(e.Message);
            return 3;
        }

        using var _clientTls = clientTls;
        var time = TimeProvider.System;
        var startedAt = time.GetUtcNow();

        SqliteStateStore store;
        try
        {
            store = SqliteStateStore.Open(options.State.Directory, time, loggers.CreateLogger("store"));
        }
        catch (StoreUnavailableException e)
        {
            logger.CannotOpenStore(e.Message);
            return 3;
        }

        await using var _ = store;

        // Held messages are customers' mail: a directory that is not the daemon's alone stops the start, like the store.
        var holdDirectory = options.Hold.DirectoryFor(options.State);
        try
        {
            HoldDirectory.Prepare(holdDirectory);
        }
        catch (HoldDirectoryException e)
        {
            logger.HoldDirectoryUnusable(e.Message);
            return 3;
        }

        // Sized once the runtime, the assemblies and the store hold their descriptors, before any connection can.
        // A release that never comes before the idle timeout ends the session gives no descriptor back: plan without it.
        var idleClientsRelease = options.Relay.IdleClientRelease > TimeSpan.Zero && options.Relay.IdleClientRelease < options.Smtp.IdleTimeout;
        if (!DescriptorBudget.TryPlan(
            descriptorLimit, DescriptorLimit.CountOpen(), options.Listen.MaxConnections, options.Relay.ReuseConnections, out var budget, out var budgetError, idleClientsRelease))
        {
            logger.DescriptorBudgetTooSmall(budgetError);
            return 3;
        }

        if (budget.Warning is not null)
        {
            logger.DescriptorBudgetWarning(budget.Warning);
        }

        if (idleClientsRelease)
        {
            logger.DescriptorBudgetPlannedWithRelease(
                budget.Limit, budget.OpenAtStart, DescriptorBudget.Reserve, budget.Sessions, budget.Upstreams, budget.IdleUpstreams, budget.Needed);
        }
        else
        {
            logger.DescriptorBudgetPlanned(
                budget.Limit, budget.OpenAtStart, DescriptorBudget.Reserve, budget.Sessions, DescriptorBudget.PerSession, budget.IdleUpstreams, budget.Needed);
        }

        options = options with { Listen = options.Listen with { MaxConnections = budget.Sessions } };
        using var metrics = new DaemonMetrics(options.Metrics.PerUser);
        var ledger = new QuotaLedger(time);
        // A restart must not reset a quota: the last day's deliveries (and unfinished ones) count again.
        var restored = await QuotaHistory.RestoreAsync(store, ledger, time.GetUtcNow(), options.LongestTransaction, CancellationToken.None);
        var attributeLogger = loggers.CreateLogger("attribute");
        var autoSuspension = new AutoSuspensionRules(options.Suspension, time);
        // Sub-UIDs (/etc/subuid) are charged to their owner and suspended with her, in the kernel too (12.4).
        var subordinates = new SubordinateUidFile(
            SubordinateUidFile.DefaultPath, attributeLogger, accountCheck: new SubordinateUidAccountCheck(SubordinateUidFile.DefaultPath, attributeLogger));
        var suspendedSets = new SuspendedUidSets(subordinates);
        SuspensionRegistry? registry = null;
        using var kernel = new NftKernelSuspension(rules, spec.Table, suspendedSets, () => registry?.KernelRefused.Select(s => s.Uid) ?? []);
        var suspensions = registry = new SuspensionRegistry(store, kernel, alert)
        {
            // Suspension.Action=Hold: an automatic suspension holds the user's mail; the kernel refuses only the others.
            HoldsInstead = options.Suspension.Action == SuspensionAction.Hold ? s => s.Source == SuspensionSource.Automatic : null,
        };
        await suspensions.LoadAsync(CancellationToken.None);
        spec = suspendedSets.Apply(spec, suspensions.KernelRefused.Select(s => s.Uid));
        var localFailures = new LocalFailureBreaker(options.Suspension, time);
        var policy = new MailPolicy(options.Limits, ledger, autoSuspension, suspensions, store, time, loggers.CreateLogger("policy"), metrics.Policy, localFailures);

        using var owners = new SocketOwnerLookup();
        using var conntrack = new ConntrackLookup();
        var hostAddresses = new HostAddresses();
        var destinations = new DestinationPolicy(
            options.Listen.Port,
            options.Relay.PermittedLocalDestinations.Select(IPEndPoint.Parse),
            hostAddresses.Current);
        await using var refusals = new RefusalLog(attributeLogger, options.Interception.RefusalSummaryInterval, time);
        refusals.Start();

        // Before the table is installed: the guard's refusals of packets that escaped the redirect, named (NFLOG). Its
        // rules log only to a group the daemon has bound.
        using var strays = new StrayPacketLog(spec.StrayLogGroup, refusals, subordinates, attributeLogger, metrics.Attribution);
        if (!await strays.StartAsync(rules, spec, CancellationToken.None))
        {
            spec = spec with { StrayLogGroup = 0 };
        }
        var attributor = new ConnectionAttributor(owners, destinations, attributeLogger, refusals, metrics.Attribution, conntrack)
        {
            Uids = new UidAttribution(subordinates, options.Attribution.UnknownUids, attributeLogger, metrics.Attribution),
            Scope = RedirectScope.Of(spec),
        };
        metrics.Attribution.ClaimedClientSockets = () => attributor.Claims.Count;
        DaemonPool? pool;
        try
        {
            pool = await DaemonPool.CreateAsync(options, credentials, store.LoadRelayStatesAsync, store.SaveRelayStatesAsync, alert.NotifyPoolAsync, metrics.Pool, loggers, time);
        }
        catch (StoreUnavailableException e)
        {
            logger.CannotOpenStore(e.Message);
            return 3;
        }

        // Disposed before the store: what the relay path changed last is stored on the way out.
        await using var poolObserver = pool?.Observer;
        using var dnsblChecks = pool?.Dnsbl;

        var recorder = new CompositeRecorder(new LogTransactionRecorder(loggers.CreateLogger("record")), metrics.Relay);
        if (MailIdentitySetup.StartupProblem(options) is { } identityProblem)
        {
            logger.RefusingToRun(identityProblem);
            return 3;
        }

        var domainMap = ReloadingDomainMap.For(options.Domains, loggers.CreateLogger("domains"));
        var identity = MailIdentitySetup.Stages(options, domainMap, loggers, alert);
        using var holds = new HoldStore(holdDirectory, time, options.Relay.HeloName, options.Trace.IncludeProcess) { MinFreeBytes = options.State.MinFree.Bytes };
        await using var listener = new InterceptListener(
            options, attributor, recorder, loggers.CreateLogger("session"), policy, new ProcessAttribution(),
            ListenerPipeline.For(options, suspensions, holds, identity, loggers.CreateLogger("session")),
            pool?.Pool, pool?.Observer, credentials, budget.Upstreams) { ClientTls = clientTls };
        using var releaser = new HoldReleaser(
            holds, new UpstreamDelivery(listener.Source), options.Hold, time, loggers.CreateLogger("hold"),
            new HoldAccounting(store, recorder, time).DeliveredAsync, alert.NotifyHoldFailedAsync);
        metrics.Relay.Upstreams = listener.Upstreams;
        metrics.Relay.UpstreamDescriptors = listener.UpstreamDescriptors;
        metrics.Store.Health = () => store.Health;
        metrics.Intercept.ActiveSessions = () => listener.ActiveSessions;
        metrics.Intercept.FloodPace = () => listener.FloodPace;
        var netfilterLogger = loggers.CreateLogger("netfilter");
        var listenerGuard = new ListenerGuard(options.Listen.Port, () => listener.Sockets, alert, netfilterLogger);
        var context = new AdminContext(options, spec, rules, store, suspensions, autoSuspension, ledger, () => listener.ActiveSessions, startedAt, time, owners.Method.ToString())
        {
            SuspendedSets = suspendedSets,
            Holds = holds,
            Releaser = releaser,
            Pool = pool,
            DomainMap = domainMap,
            LocalFailures = localFailures,
        };
        await using var control = new ControlServer(context, loggers.CreateLogger("control"));
        // Started before the listener accepts and the store is pruned: what happens before an exporter listens is not counted.
        await using var metricsServer = options.Metrics.Listen.Length == 0
            ? null
            : new MetricsEndpoint(IPEndPoint.Parse(options.Metrics.Listen), metrics.Sources, loggers) { OwnerOf = attributor.DirectPeerOwner, Scrapers = spec.MetricsUids.ToHashSet(), Token = metricsToken, SubordinateOwnerOf = uid => subordinates.Current.FindOwner(uid) };
        foreach (var warning in spec.MetricsEndpoint is { } metricsAt ? MetricsEndpoint.Warnings(metricsAt, spec.MetricsUids) : [])
        {
            loggers.CreateLogger("metrics").ConfigurationWarning(warning);
        }

        using var retention = new StoreRetention(store, options.State, options.LongestTransaction, time, loggers.CreateLogger("store"), alert.NotifyStorePrunedAsync, metrics.Store);
        using var generation = TableWatchdog.TryOpenGeneration(netfilterLogger);
        using var watchdog = new TableWatchdog(rules, spec, suspensions, options.Interception.VerifyInterval, netfilterLogger, listenerGuard)
        {
            SuspendedSets = suspendedSets,
            Generation = generation,
            HearChanges = true,
            AfterTableChange = spec.MetricsEndpoint is { } swept ? new MetricsPortSweep(swept, spec.MetricsServerUid, loggers.CreateLogger("metrics")) { SubordinateOwnerOf = uid => subordinates.Current.FindOwner(uid) }.Request : null,
        };
        metrics.Intercept.Watchdog = watchdog;

        // Start order = the order of the guarantees: the port is ours before the table redirects to it; READY (the
        // SystemdService, after every start) only once the table is verified and the listener accepts. Stop order is the
        // reverse: STOPPING at once, the SMTP sessions drain while the table watchdog and the control socket still run.
        IHostedService[] services =
        [
            new ListenerBinding(listener, options.Listen.Port, rules, spec, alert, logger),
            watchdog,
            control,
            .. (metricsServer is null ? Array.Empty<IHostedService>() : [metricsServer]),
            retention,
            .. (pool is null ? Array.Empty<IHostedService>() : [pool.Observer, pool.Dnsbl]),
            listener,

            // After the listener, so it stops first: a delivery in progress ends before the upstream connections close.
            releaser,
        ];
        using var host = DaemonHost.Build(loggers, lifetime => new SystemdService(systemd, lifetime, AnnounceReady, AnnounceStopping, logger), services);
        try
        {
            await host.StartAsync();
        }
        catch (OperationCanceledException) when (host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested)
        {
            // SIGTERM while starting: stop what started, as after READY.
            await host.StopAsync();
            return 0;
        }
        catch (DaemonStartupException e)
        {
            return e.ExitCode;
        }
        catch (ControlSocketException e)
        {
            logger.CannotOpenControlSocket(e.Message);
            return 3;
        }

        await host.WaitForShutdownAsync();
        logger.Stopped(spec.Table, string.Join(",", spec.Ports));
        return 0;

        string AnnounceReady()
        {
            var endpoints = string.Join(" ", listener.Endpoints);
            var exemptUids = string.Join(",", spec.ExemptUids);
            var ports = string.Join(",", spec.Ports);
            var suspended = spec.SuspendedUids.Count == 0 ? "none" : string.Join(",", spec.SuspendedUids);
            var metricsText = metricsServer is null ? ""
                : metricsServer.BoundEndpoint is null ? $"; metrics NOT on http://{options.Metrics.Listen}/metrics: another socket holds the port, tried again every {MetricsEndpoint.BindRetryInterval.TotalSeconds:0} s"
                : $"; metrics on http://{options.Metrics.Listen}/metrics";
            logger.Ready(endpoints, spec.Table, ports, exemptUids, suspended, owners.Method, store.Path, restored, control.SocketPath, metricsText);
            return $"relaying: listening on {endpoints}; table inet {spec.Table} verified, exempt uids {exemptUids}";
        }

        string AnnounceStopping()
        {
            var sessions = listener.ActiveSessions;
            logger.Stopping(sessions, InterceptListener.ShutdownGrace.TotalSeconds);
            return $"stopping: {sessions} sessions still open";
        }
    }

    /// <summary>
    /// Suspension.Action=Hold: the trace header, then the stage that holds a suspended user's messages (so every message
    /// is spooled); null otherwise (today's streamed pipeline).
    /// </summary>
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
                logger.DescriptorLimitRaised(before.Soft, after.Soft);
            }

            return (long)Math.Min(after.Soft, (ulong)int.MaxValue);
        }
        catch (LinuxInteropException e)
        {
            var current = DescriptorLimit.Current();
            logger.DescriptorLimitNotRaised(current.Soft, current.Hard, e.Message);
            return (long)Math.Min(current.Soft, (ulong)int.MaxValue);
        }
    }
}
