using System.Net;
using Interceptor.Smtp.IO;
using Interceptor.Smtp.Session;
using Interceptor.Tests.Smtp.IO;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>Issue 19: the client side of a session holds no read buffer while it waits for the next command.</summary>
[TestFixture]
[CancelAfter(20_000)]
public sealed class ClientChannelTests
{
    private static readonly ConnectionOrigin Origin = new(1001, "alice", new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Parse("192.0.2.1"), 25));

    private static SessionTimeouts Timeouts(TimeSpan idle) =>
        new(new TimeoutLimits(idle, TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(30), 0), NullLogger.Instance, Origin, CancellationToken.None);

    [Test]
    public async Task Waiting_for_a_command_holds_no_buffer_and_reading_one_leaves_none()
    {
        using var pair = await LoopbackPair.OpenAsync();
        using var timeouts = Timeouts(TimeSpan.FromSeconds(10));
        using var channel = new ClientChannel(pair.Server, timeouts);

        var pending = channel.ReadCommandAsync(512).AsTask();
        await Task.Delay(200);
        Assert.That(channel.Reader.HoldsBuffer, Is.False, "idle between commands: no buffer");

        await pair.Client.WriteAsync("EHLO client.test\r\n"u8.ToArray());
        Assert.That(await pending, Is.EqualTo(new Line(LineStatus.Ok, "EHLO client.test")));
        Assert.That(channel.Reader.HoldsBuffer, Is.False);
        Assert.That(channel.SentEarly, Is.False);
    }

    [Test]
    public async Task Discarding_what_came_after_a_command_returns_the_buffer()
    {
        using var pair = await LoopbackPair.OpenAsync();
        using var timeouts = Timeouts(TimeSpan.FromSeconds(10));
        using var channel = new ClientChannel(pair.Server, timeouts);

        await pair.Client.WriteAsync("STARTTLS\r\nMAIL FROM:<injected@x>\r\n"u8.ToArray());
        Assert.That(await channel.ReadCommandAsync(512), Is.EqualTo(new Line(LineStatus.Ok, "STARTTLS")));
        Assert.That(channel.Reader.HoldsBuffer, Is.True, "the injected command is buffered");

        Assert.That(channel.DiscardBuffered(), Is.EqualTo("MAIL FROM:<injected@x>\r\n".Length));
        Assert.That(channel.Reader.HoldsBuffer, Is.False);
    }

    [Test]
    public async Task An_idle_client_still_meets_the_idle_timeout()
    {
        using var pair = await LoopbackPair.OpenAsync();
        using var timeouts = Timeouts(TimeSpan.FromMilliseconds(300));
        using var channel = new ClientChannel(pair.Server, timeouts);

        var e = Assert.ThrowsAsync<SessionTimeoutException>(async () => await channel.ReadCommandAsync(512));
        Assert.That(e!.Reason, Is.EqualTo(TimeoutReason.Idle));
        Assert.That(channel.Reader.HoldsBuffer, Is.False);
    }
}
