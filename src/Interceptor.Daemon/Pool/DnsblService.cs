using System.Net;
using Interceptor.Core.Pool;
using Interceptor.Daemon.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Pool;

/// <summary>
/// Looks every relay's <c>EgressAddress</c> (and, in Auto mode, <c>Burn.HostAddress</c> as <see cref="RelayPool.HostKey"/>)
/// up in <c>Burn.DnsblZones</c> once at start and every <c>Burn.CheckIntervalMinutes</c>, hands each result to the pool
/// (<see cref="RelayPool.RecordDnsbl"/>: a listing burns, a clean check counts toward the return) and then returns
/// whatever is due (<see cref="RelayPool.ReturnDue"/>). A resolver error (127.255.255.x, no answer) is logged and alerted,
/// never a burn: the pool's rule.
/// </summary>
public sealed class DnsblService(
    RelayPool pool,
    IReadOnlyList<(string Name, IPAddress Address)> targets,
    Func<IPAddress, CancellationToken, Task<IReadOnlyList<DnsblResult>>> check,
    PoolObserver observer,
    TimeSpan interval,
    ILogger logger,
    TimeProvider time) : BackgroundService
{
    /// <summary>Rounds completed since the start (for tests and status).</summary>
    public int Rounds { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Our part of each check off the socket threads (see ThreadPoolContext); DnsClient's own parsing of a reply may
        // still run there (it awaits with ConfigureAwait(false)), which is microseconds.
        await ThreadPoolContext.SwitchTo();
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            do
            {
                await CheckAllAsync(stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>One round: every target, then the returns that are due.</summary>
    public async Task CheckAllAsync(CancellationToken cancellationToken)
    {
        foreach (var (name, address) in targets)
        {
            var results = await check(address, cancellationToken);
            var update = pool.RecordDnsbl(name, results);
            var summary = pool.Snapshot().First(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase)).LastDnsbl;
            var shown = name == RelayPool.HostKey ? "host" : name;
            if (results.Any(r => r.Verdict == DnsblVerdict.ResolverError) && results.All(r => r.Verdict != DnsblVerdict.Listed))
            {
                logger.DnsblResolverError(shown, address.ToString(), summary);
                observer.DnsblError(name, summary);
            }
            else
            {
                logger.DnsblChecked(shown, address.ToString(), summary);
            }

            observer.Publish(update);
        }

        observer.Publish(pool.ReturnDue());
        Rounds++;
    }
}
