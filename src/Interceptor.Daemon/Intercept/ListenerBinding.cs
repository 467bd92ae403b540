using System.Net.Sockets;
using Interceptor.Daemon.Commands;
using Interceptor.Daemon.Decide;
using Interceptor.Daemon.Hosting;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Intercept;

/// <summary>
/// Binds the SMTP listener before anything else starts: the table must never redirect to a port that is not ours. When
/// the port cannot be had, the table is installed in its lockdown form (no redirect), the holder named and alerted, and
/// the daemon does not start (exit 3). The listener accepts later (it is the last hosted service to start).
/// </summary>
public sealed class ListenerBinding(
    InterceptListener listener, int port, RulesetManager rules, RulesetSpec spec, AlertCommand alert, ILogger logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            listener.Bind();
        }
        catch (SocketException e)
        {
            // Someone else holds the port (root or a CAP_NET_BIND_SERVICE process, the port being privileged): say who,
            // and take the redirect away from them.
            var holder = FindHolder(port, logger);
            logger.CannotListen(port, e.Message, holder is null ? "" : "; " + holder.Reason);
            await LockDownAsync(rules, spec, holder ?? new ListenerProblem($"cannot listen on port {port}: {e.Message}", null, null), alert, logger);
            throw new DaemonStartupException(3, $"cannot listen on port {port}: {e.Message}", e);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// The lockdown form of the table (no redirect; the guard table refuses), logged and alerted: the daemon cannot own its
    /// listener port, so nothing may be redirected to it. A failure to install it is logged; the exit code stays the same.
    /// </summary>
    public static async Task LockDownAsync(RulesetManager rules, RulesetSpec spec, ListenerProblem problem, AlertCommand alert, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(rules);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(alert);
        try
        {
            await rules.InstallAsync(spec with { Lockdown = true }, CancellationToken.None);
            logger.LockedDown(problem.Reason, spec.Table, string.Join(",", spec.Ports), spec.ListenPort);
        }
        catch (NetfilterException e)
        {
            logger.LockdownNotInstalled(spec.Table, e.Message);
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
            logger.CannotListListeners(port, e.Message);
            return null;
        }
    }
}
