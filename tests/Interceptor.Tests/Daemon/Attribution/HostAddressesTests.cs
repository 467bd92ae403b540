using System.Net;
using System.Net.NetworkInformation;
using Interceptor.Daemon.Attribution;
using Interceptor.Tests.Smtp.Session;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Attribution;

/// <summary>
/// The host's addresses are asked for on the accepting socket thread (every redirected connection's destination check),
/// so reading them (several files in .NET's interface listing) happens at construction and in the background only.
/// </summary>
public class HostAddressesTests
{
    private static readonly IPAddress First = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress Second = IPAddress.Parse("192.0.2.2");

    [Test]
    public async Task A_stale_list_is_answered_at_once_and_re_read_on_another_thread()
    {
        // Whether each read ran inside a call of Current() (a thread id would not do: after an await the test's own
        // code may continue on the pool thread that did the re-read).
        var reads = new List<bool>();
        var inCurrent = false;
        var answer = First;
        var addresses = new HostAddresses(() =>
        {
            lock (reads)
            {
                reads.Add(Volatile.Read(ref inCurrent));
            }

            return new HashSet<IPAddress> { answer };
        }, TimeSpan.Zero);
        Assert.That(reads, Is.EqualTo(new[] { false }), "read once, at construction");

        answer = Second;
        await Task.Delay(20);
        Volatile.Write(ref inCurrent, true);
        var current = addresses.Current();
        Volatile.Write(ref inCurrent, false);

        Assert.That(current, Is.EquivalentTo(new[] { First }), "the caller gets the last list, not a read of its own");
        await Wait.UntilAsync(() => addresses.Refreshes == 1, "the background re-read");
        Assert.That(addresses.Current(), Does.Contain(Second));
        lock (reads)
        {
            Assert.That(reads[1], Is.False, "re-read on the thread pool, not inside the caller's Current()");
        }
    }

    [Test]
    public async Task A_failed_re_read_keeps_the_last_list()
    {
        var fail = false;
        var addresses = new HostAddresses(() => fail ? throw new NetworkInformationException(5) : new HashSet<IPAddress> { First }, TimeSpan.Zero);
        fail = true;
        await Task.Delay(20);

        Assert.That(addresses.Current(), Is.EquivalentTo(new[] { First }));
        await Task.Delay(200);
        Assert.That(addresses.Current(), Is.EquivalentTo(new[] { First }), "a listing that failed changes nothing");
    }
}
