using System.Collections.Concurrent;
using System.Net;
using Interceptor.Linux;
using Interceptor.Tests.Netfilter;

namespace Interceptor.Tests.Linux;

/// <summary>
/// Packets an nft rule logs to an NFLOG group, from the real kernel inside a throwaway namespace: what the guard's stray
/// rules hand the daemon, so it can name the customer (StrayPacketLog).
/// </summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(60_000)]
public class NflogKernelTests
{
    private const ushort Group = 77;
    private const uint Customer = 1000;

    [Test]
    public void A_logged_syn_comes_with_the_uid_that_sent_it_its_prefix_and_both_ends()
    {
        using var ns = TestNamespace.CreateOrSkip(needsConnections: true);
        Nft(ns, "add table inet t; add chain inet t out { type filter hook output priority 0; }");
        Nft(ns, $"add rule inet t out tcp dport 25 log prefix \"stray test\" group {Group} reject with tcp reset");
        var packets = new BlockingCollection<LoggedPacket>();
        var failures = new ConcurrentQueue<Exception>();
        using var listener = InNetworkNamespace.Open(ns, () => NflogListener.Start(Group, packets.Add, () => { }, failures.Enqueue));

        Assert.That(ns.Connect(Customer, "127.0.0.1", 25).Outcome, Is.EqualTo("refused"), "the rule resets the SYN");
        Assert.That(packets.TryTake(out var v4, TimeSpan.FromSeconds(5)), Is.True, "the SYN was logged");
        Assert.That(ns.Connect(null, "::1", 25).Outcome, Is.EqualTo("refused"));
        Assert.That(packets.TryTake(out var v6, TimeSpan.FromSeconds(5)), Is.True, "the IPv6 SYN was logged");

        Assert.Multiple(() =>
        {
            Assert.That(v4!.Prefix, Is.EqualTo("stray test"));
            Assert.That(v4.Uid, Is.EqualTo(Customer), "the socket's owner, as meta skuid sees it");
            Assert.That(v4.Destination, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, 25)));
            Assert.That(v4.Source!.Address, Is.EqualTo(IPAddress.Loopback));
            Assert.That(v4.Source.Port, Is.GreaterThan(1023), "the client's ephemeral port");
            Assert.That(v6!.Uid, Is.EqualTo(0u), "root's");
            Assert.That(v6.Destination, Is.EqualTo(new IPEndPoint(IPAddress.IPv6Loopback, 25)));
            Assert.That(failures, Is.Empty);
        });
    }

    [Test]
    public void A_group_already_bound_is_refused_with_a_message_naming_it()
    {
        using var ns = TestNamespace.CreateOrSkip();
        using var first = InNetworkNamespace.Open(ns, () => NflogListener.Start(Group, _ => { }, () => { }, _ => { }));

        var refused = Assert.Throws<InvalidOperationException>(() =>
            InNetworkNamespace.Open(ns, () => NflogListener.Start(Group, _ => { }, () => { }, _ => { })));
        Assert.That(refused!.InnerException, Is.InstanceOf<LinuxInteropException>());
        Assert.That(refused.InnerException!.Message, Does.Contain($"NFLOG group {Group}: another process has bound it"));
    }

    [Test]
    public void A_closed_listener_gives_the_group_back_for_the_next_bind()
    {
        // What StrayPacketLog's rebind relies on: the kernel holds a group for its socket until that socket is closed.
        using var ns = TestNamespace.CreateOrSkip();
        var first = InNetworkNamespace.Open(ns, () => NflogListener.Start(Group, _ => { }, () => { }, _ => { }));
        first.Dispose();

        using var second = InNetworkNamespace.Open(ns, () => NflogListener.Start(Group, _ => { }, () => { }, _ => { }));
        Assert.Throws<InvalidOperationException>(() =>
            InNetworkNamespace.Open(ns, () => NflogListener.Start(Group, _ => { }, () => { }, _ => { })), "the second holds it now");
    }

    private static void Nft(TestNamespace ns, string command)
    {
        var result = ns.Exec(["nft", command]);
        Assert.That(result.ExitCode, Is.Zero, $"nft {command}: {result.StandardError}");
    }
}
