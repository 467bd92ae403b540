using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Interceptor.Core.Decide;
using Interceptor.Daemon.Attribute;
using Interceptor.Daemon.Intercept;
using Interceptor.Daemon.Record;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// `smtp-interceptor run`: bind the loopback listeners, install and verify the nft table, relay until
/// SIGTERM, and leave the table in place on the way out (fail closed).
/// </summary>
public static class RunCommand
{
    private static readonly TimeSpan ShutdownGrace = TimeSpan.FromSeconds(10);

    public static async Task<int> RunAsync(Arguments arguments, ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger("smtp-interceptor");
        var (options, spec) = DaemonSetup.Load(arguments.ConfigPath);

        using var owners = new SocketOwnerLookup();
        var hostAddresses = new HostAddresses();
        var destinations = new DestinationPolicy(
            options.Listen.Port,
            options.Relay.PermittedLocalDestinations.Select(IPEndPoint.Parse),
            hostAddresses.Current);
        var attributor = new ConnectionAttributor(owners, destinations, loggers.CreateLogger("attribute"));
        var recorder = new LogTransactionRecorder(loggers.CreateLogger("record"));
        await using var listener = new InterceptListener(options, attributor, recorder, loggers.CreateLogger("session"));
        try
        {
            listener.Bind();
        }
        catch (SocketException e)
        {
            logger.LogCritical("cannot listen on port {Port}: {Reason}", options.Listen.Port, e.Message);
            return 3;
        }

        var rules = new RulesetManager(new NftClient());
        await rules.InstallAsync(spec, CancellationToken.None);
        listener.Start();
        logger.LogInformation(
            new EventId(1, "Ready"),
            "ready: listening on {Endpoints}; table inet {Table} verified, intercepting ports {Ports}, exempt uids {ExemptUids}; owner lookup via {LookupMethod}",
            string.Join(" ", listener.Endpoints),
            spec.Table,
            string.Join(",", spec.Ports),
            string.Join(",", spec.ExemptUids),
            owners.Method);

        var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        await stop.Task;

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
}
