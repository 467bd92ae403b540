using System.Net;
using System.Text;
using Interceptor.Smtp.Session;

namespace Interceptor.Tests.Smtp.Pool;

/// <summary>The trace header names the pool relay that carried the message, after the documented prefix.</summary>
[TestFixture]
public class TraceHeaderRelayTests
{
    private static readonly ConnectionOrigin Origin = new(1001, "alice", new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Loopback, 25));

    [Test]
    public void A_relay_is_named_after_the_id_and_none_keeps_todays_header()
    {
        var pooled = Encoding.ASCII.GetString(TraceHeader.Render(Origin, "web1.example", "abc", relay: "relay2"));
        var direct = Encoding.ASCII.GetString(TraceHeader.Render(Origin, "web1.example", "abc"));

        Assert.That(pooled, Is.EqualTo("X-Interceptor-Origin: uid=1001 user=alice; host=web1.example; id=abc; relay=relay2\r\n"));
        Assert.That(direct, Is.EqualTo("X-Interceptor-Origin: uid=1001 user=alice; host=web1.example; id=abc\r\n"));
    }
}
