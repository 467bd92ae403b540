using System.Globalization;
using System.Text.Json.Nodes;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Session steps run on the threads that poll every socket (SocketThreads), and a step that never has to wait is never
/// preempted. Bob streams on more sessions than this host has socket threads, so the daemon always finds more of his
/// bytes already there: NOOPs without end (reading every reply), or one command line without end (no LF, discarded up
/// to the line timeout). Without a ThreadBudget in the session loop (NOOPs) and in the line reader's fill loop (the
/// endless line: 1.6–7.5 s per message for alice, attack review) each of his sessions keeps a socket thread, and every
/// other connection on it waits. Alice, at the default limits, must get her mail through meanwhile, each message within
/// a bound.
/// </summary>
[TestFixture]
[NonParallelizable] // bounds on each message's time and on bob's NOOPs in 20 s
[CancelAfter(120_000)]
public sealed class StreamingClientTests
{
    private const int Messages = 10;

    /// <summary>A message takes a few milliseconds on an idle host, and tens under this stream; a stalled socket thread
    /// holds it for the whole stream (20 s).</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(3);

    /// <summary>Alice's median under either stream: tens of milliseconds with the budgets; 0.5–1.4 s per message with
    /// the endless line and no budget in the line reader (measured here), where no single message reaches <see cref="Bound"/>.</summary>
    private static readonly TimeSpan MedianBound = TimeSpan.FromMilliseconds(250);

    [TestCase(false, TestName = "A_user_streaming_commands_without_end_keeps_no_socket_thread_and_another_users_mail_goes_through")]
    [TestCase(true, TestName = "A_user_streaming_one_command_line_without_end_keeps_no_socket_thread_and_another_users_mail_goes_through")]
    public async Task A_user_streaming_without_end_keeps_no_socket_thread(bool endlessLine)
    {
        await using var s = await Scenario.StartAsync(config: Config(
            ($"Limits.Users.{TestUsers.Bob.Name}.ConnectionsPerSecond", 0)));
        var sessions = Math.Max(4, 2 * Environment.ProcessorCount);
        var flags = s.Dir.Subdirectory("flags", worldWritable: true);
        var (ready, stop) = (Path.Combine(flags, "streaming"), Path.Combine(flags, "stop"));
        var stream = s.Ns.RunAsUserAsync(TestUsers.Bob, Requirements.Python,
            ["-I", s.Dir.PathOf("noop_stream.py"), "127.0.0.2", "25", "--sessions", sessions.ToString(CultureInfo.InvariantCulture),
             "--seconds", "20", "--ready", ready, "--stop", stop, .. (endlessLine ? new[] { "--endless-line" } : [])],
            TimeSpan.FromSeconds(60));
        for (var i = 0; i < 300 && !File.Exists(ready) && !stream.IsCompleted; i++)
        {
            await Task.Delay(50);
        }

        // Let the streams fill every buffer on the way before alice starts.
        await Task.Delay(500);
        var send = await s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python,
            ["-I", s.Dir.PathOf("flood.py"), "send", "127.0.0.2", "25", "--count", Messages.ToString(CultureInfo.InvariantCulture), "--interval", "0.1"],
            TimeSpan.FromSeconds(60));
        var aliceDone = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        await File.WriteAllTextAsync(stop, "");
        var streamRun = await stream;

        var streamLine = streamRun.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        var sendLine = send.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(streamLine, Is.Not.Null, "the stream printed no result\n" + streamRun.Describe() + s.Describe());
        Assert.That(sendLine, Is.Not.Null, "alice's sender printed no result\n" + send.Describe() + s.Describe());
        var streamed = JsonNode.Parse(streamLine!)!;
        var sends = JsonNode.Parse(sendLine!)!["sends"]!.AsArray()
            .Select(n => (Seconds: n!["seconds"]!.GetValue<double>(), Ok: n["ok"]!.GetValue<bool>(), Error: n["error"]?.GetValue<string>())).ToList();
        await TestContext.Out.WriteLineAsync($"bob's stream: {streamLine}\nalice: {string.Join(" ", sends.Select(x => x.Seconds.ToString("F3", CultureInfo.InvariantCulture)))}");
        var context = $"\nstream: {streamLine}\nalice: {sendLine}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(streamed["sessions"]!.GetValue<int>(), Is.EqualTo(sessions), "every stream session was greeted" + context);
            if (!endlessLine)
            {
                Assert.That(streamed["noops"]!.GetValue<long>(), Is.GreaterThan(10_000), "bob's NOOPs were answered: the stream was on" + context);
            }

            Assert.That(streamed["errors"]!.AsObject(), Is.Empty, "bob's streams were taken until he stopped" + context);
            Assert.That(streamed["first_end"]!.GetValue<double>(), Is.GreaterThanOrEqualTo(aliceDone - 0.5),
                "every stream was still on while alice sent" + context);
            Assert.That(sends.Select(x => x.Ok), Has.All.True, "alice's mail is delivered" + context);
            Assert.That(sends.Max(x => x.Seconds), Is.LessThan(Bound.TotalSeconds), $"each of alice's messages within {Bound.TotalSeconds} s" + context);
            Assert.That(sends.Select(x => x.Seconds).Order().ElementAt(sends.Count / 2), Is.LessThan(MedianBound.TotalSeconds),
                $"alice's median within {MedianBound.TotalMilliseconds} ms" + context);
            Assert.That(RelayedFor(s, TestUsers.Alice), Has.Count.EqualTo(Messages), context);
        });
    }
}
