using System.Net;
using Interceptor.Daemon.Attribution;
using Interceptor.Linux;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Attribution;

/// <summary>
/// The client's own port from conntrack, with conntrack's answers given: a port NAT moved, entries that do not fit, and
/// when the shown port may stand in (only on a host where conntrack cannot be asked at all).
/// </summary>
[TestFixture]
public sealed class ClientPortCheckTests
{
    private const int EPROTONOSUPPORT = 93;
    private const int EMFILE = 24;

    private static readonly IPEndPoint Listener = IPEndPoint.Parse("127.0.0.1:10025");
    private static readonly IPEndPoint Shown = IPEndPoint.Parse("127.0.0.1:50000");
    private static readonly IPEndPoint Own = IPEndPoint.Parse("127.0.0.1:40000");
    private static readonly IPEndPoint Mx = IPEndPoint.Parse("192.0.2.25:25");

    private static ConntrackEntry Entry(IPEndPoint source, IPEndPoint destination) => new(new(source, destination), new(Listener, Shown));

    private static ClientPortCheck Check(Func<IPEndPoint, IPEndPoint, ConntrackEntry?>? query) => new(query, NullLogger.Instance);

    [Test]
    public void A_port_NAT_moved_is_replaced_by_the_clients_own_from_the_entry_of_the_reply_tuple()
    {
        (IPEndPoint, IPEndPoint)? asked = null;
        var check = Check((listener, shown) =>
        {
            asked = (listener, shown);
            return Entry(Own, Mx);
        });

        var (answer, client, why) = check.ClientOf(Listener, Shown, Mx);

        Assert.Multiple(() =>
        {
            Assert.That(asked, Is.EqualTo((Listener, Shown)), "asked by the reply tuple: listener to the shown endpoint");
            Assert.That(answer, Is.EqualTo(ClientPortAnswer.Known));
            Assert.That(client, Is.EqualTo(Own));
            Assert.That(why, Is.Null);
        });
    }

    [Test]
    public void A_dual_stack_listeners_mapped_form_is_kept_with_the_entrys_port()
    {
        var check = Check((_, _) => Entry(Own, Mx));

        var (answer, client, _) = check.ClientOf(Listener, IPEndPoint.Parse("[::ffff:127.0.0.1]:50000"), IPEndPoint.Parse("[::ffff:192.0.2.25]:25"));

        Assert.That((answer, client), Is.EqualTo((ClientPortAnswer.Known, IPEndPoint.Parse("[::ffff:127.0.0.1]:40000"))));
    }

    [TestCase("none", "conntrack has no entry for it")]
    [TestCase("other destination", "conntrack's entry for it goes to 192.0.2.26:25")]
    [TestCase("other client", "conntrack's entry for it comes from 127.0.0.9:40000")]
    public void An_entry_that_does_not_fit_the_connection_refuses_it(string kind, string expected)
    {
        var entry = kind switch
        {
            "none" => null,
            "other destination" => Entry(Own, IPEndPoint.Parse("192.0.2.26:25")),
            _ => Entry(IPEndPoint.Parse("127.0.0.9:40000"), Mx),
        };

        var (answer, _, why) = Check((_, _) => entry).ClientOf(Listener, Shown, Mx);

        Assert.That((answer, why), Is.EqualTo((ClientPortAnswer.Contradicted, expected)));
    }

    [Test]
    public void Only_a_host_where_conntrack_cannot_be_asked_at_all_leaves_the_shown_port()
    {
        Assert.That(Check(null).ClientOf(Listener, Shown, Mx).Answer, Is.EqualTo(ClientPortAnswer.Unverifiable), "none given");

        var absent = Check((_, _) => throw new OwnerLookupException("socket(AF_NETLINK, NETLINK_NETFILTER)", EPROTONOSUPPORT));
        Assert.That(absent.ClientOf(Listener, Shown, Mx), Is.EqualTo((ClientPortAnswer.Unverifiable, Shown, (string?)null)));

        // A failure of one query (no descriptor left under a flood, a timeout: errno 0) refuses the connection.
        var flooded = Check((_, _) => throw new OwnerLookupException("socket(AF_NETLINK, NETLINK_NETFILTER)", EMFILE));
        Assert.Throws<OwnerLookupException>(() => flooded.ClientOf(Listener, Shown, Mx));
        var slow = Check((_, _) => throw new OwnerLookupException("ctnetlink did not answer within 1 s"));
        Assert.Throws<OwnerLookupException>(() => slow.ClientOf(Listener, Shown, Mx));
    }

    [Test]
    public void Every_check_that_leaves_the_shown_port_is_counted_for_monitoring_and_no_other()
    {
        using var metrics = new AttributionMetrics();
        using var recorder = new MeterRecorder(metrics.Meter);
        metrics.RecordZeros();
        var answers = new Queue<Func<ConntrackEntry?>>([
            () => Entry(Own, Mx),
            () => null,
            () => throw new OwnerLookupException("socket(AF_NETLINK, NETLINK_NETFILTER)", EMFILE),
        ]);
        var blind = new ClientPortCheck((_, _) => throw new OwnerLookupException("socket(AF_NETLINK, NETLINK_NETFILTER)", EPROTONOSUPPORT), NullLogger.Instance, metrics: metrics);
        var seeing = new ClientPortCheck((_, _) => answers.Dequeue()(), NullLogger.Instance, metrics: metrics);

        // A conntrack that answers (known, contradicted, one query failed) never counts.
        Assert.That(seeing.ClientOf(Listener, Shown, Mx).Answer, Is.EqualTo(ClientPortAnswer.Known));
        Assert.That(seeing.ClientOf(Listener, Shown, Mx).Answer, Is.EqualTo(ClientPortAnswer.Contradicted));
        Assert.Throws<OwnerLookupException>(() => seeing.ClientOf(Listener, Shown, Mx));
        Assert.That(recorder.Totals()["smtpi_client_ports_unverified_total"], Is.Zero);

        // Without ctnetlink every connection counts, not only the one the 15-minute warning names.
        for (var i = 0; i < 3; i++)
        {
            Assert.That(blind.ClientOf(Listener, Shown, Mx).Answer, Is.EqualTo(ClientPortAnswer.Unverifiable));
        }

        Assert.That(recorder.Totals()["smtpi_client_ports_unverified_total"], Is.EqualTo(3));
    }

    [Test]
    public void Once_conntrack_has_answered_even_an_unavailable_errno_refuses_instead_of_trusting_the_shown_port()
    {
        var calls = 0;
        var check = Check((_, _) => ++calls == 1 ? Entry(Own, Mx) : throw new OwnerLookupException("ctnetlink IPCTNL_MSG_CT_GET", EPROTONOSUPPORT));

        Assert.That(check.ClientOf(Listener, Shown, Mx).Answer, Is.EqualTo(ClientPortAnswer.Known));
        Assert.Throws<OwnerLookupException>(() => check.ClientOf(Listener, Shown, Mx));
    }
}
