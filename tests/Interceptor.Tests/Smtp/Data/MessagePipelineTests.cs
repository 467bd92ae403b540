using System.Net;
using System.Text;
using Interceptor.Core.Events;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Session;
using Interceptor.Tests.Smtp.Session;

namespace Interceptor.Tests.Smtp.Data;

/// <summary>Issue 13.2: the stages between "the client's message is complete" and "the upstream has it".</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class MessagePipelineTests
{
    private const string Body = "Subject: stages\r\n\r\nhello\r\n";

    [Test]
    public void Todays_pipeline_is_the_trace_header_alone_and_it_streams()
    {
        var pipeline = MessagePipeline.Default(RelayHarness.HeloName, includeProcess: false);
        var origin = new ConnectionOrigin(RelayHarness.Uid, RelayHarness.User, new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Loopback, 25));
        var message = new MessageContext(origin, "abc", "alice@customer.test", ["bob@example.net"]);

        Assert.That(pipeline.Streams, Is.True);
        Assert.That(pipeline.Stages.Select(s => s.Name), Is.EqualTo(new[] { "trace-header" }));
        Assert.That(Encoding.ASCII.GetString(pipeline.HeadersFor(message).Span), Is.EqualTo(RelayHarness.TraceHeader("abc")));
    }

    [Test]
    public void A_stage_that_needs_the_whole_message_needs_a_spool()
    {
        var error = Assert.Throws<ArgumentException>(() => _ = new MessagePipeline([new WholeMessageStage()]));

        Assert.That(error!.Message, Does.Contain("whole-message"));
    }

    [Test]
    public async Task A_streaming_stage_adds_its_header_after_the_trace_header_and_the_message_streams_on()
    {
        await using var upstream = new ScriptedUpstream();
        var pipeline = new MessagePipeline([new TraceHeaderStage(RelayHarness.HeloName, false), new HeaderStage("X-Scanned: yes\r\n")]);
        await using var session = MemorySession.Start(upstream.EndPoint, pipeline: pipeline);
        await session.StartDataAsync();

        await session.SendAsync(Body + ".\r\n");
        var final = await session.ReadReplyAsync();

        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        var (trace, rest) = RelayHarness.SplitTraceHeader((await upstream.SessionAsync(0)).Messages.Single());
        Assert.That(trace, Does.StartWith("X-Interceptor-Origin: uid=1001 user=alice; host=relay.test; id="));
        Assert.That(Encoding.ASCII.GetString(rest), Is.EqualTo("X-Scanned: yes\r\n" + Body));
    }

    [Test]
    public async Task A_stage_refusing_the_message_stops_it_before_the_final_dot()
    {
        await using var upstream = new ScriptedUpstream();
        var refusal = new SmtpReply(550, "5.7.1", "message refused by the content scan");
        var pipeline = new MessagePipeline([new TraceHeaderStage(RelayHarness.HeloName, false), new VerdictStage(StageVerdict.Refuse(refusal))]);
        await using var session = MemorySession.Start(upstream.EndPoint, pipeline: pipeline);
        await session.StartDataAsync();

        await session.SendAsync(Body + ".\r\n");
        var final = await session.ReadReplyAsync();
        var next = await session.CommandAsync("MAIL FROM:<alice@customer.test>");

        Assert.That(final.Text, Is.EqualTo(refusal.ToWire().TrimEnd()));
        Assert.That(next.Code, Is.EqualTo(250), "the transaction ended: a new MAIL is not nested");
        var relayed = await upstream.SessionAsync(0);
        Assert.That(await Wait.ForAsync(relayed.Ended, "the upstream's DATA to be dropped"), Is.EqualTo(UpstreamEnd.Reset));
        Assert.That(relayed.Messages, Is.Empty, "never a final dot");
        await Wait.UntilAsync(() => session.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        var recorded = session.Recorder.Events.Single();
        Assert.That(recorded.Outcome, Is.EqualTo(TransactionOutcome.Rejected));
        Assert.That(recorded.Unsent, Is.EqualTo(UnsentKind.RefusedAtData), "refused for what the client sent, like a data problem");
        Assert.That(session.Log.Lines, Has.Some.StartsWith("message stage verdict stopped message "));
    }

    [Test]
    public async Task A_whole_message_stage_sees_the_spooled_message_before_the_upstream_gets_any_of_it()
    {
        await using var upstream = new ScriptedUpstream();
        var spools = new MemorySpools();
        var stage = new WholeMessageStage();
        var pipeline = new MessagePipeline([new TraceHeaderStage(RelayHarness.HeloName, false), stage], spools);
        await using var session = MemorySession.Start(upstream.EndPoint, pipeline: pipeline);
        await session.StartDataAsync();

        await session.SendAsync(Body + ".\r\n");
        var final = await session.ReadReplyAsync();

        Assert.That(pipeline.Streams, Is.False);
        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        Assert.That(stage.Seen, Is.EqualTo(Body), "the stage read the whole message from the spool");
        var (trace, rest) = RelayHarness.SplitTraceHeader((await upstream.SessionAsync(0)).Messages.Single());
        Assert.That(trace, Does.StartWith("X-Interceptor-Origin: "));
        Assert.That(Encoding.ASCII.GetString(rest), Is.EqualTo(Body));
        Assert.That(spools.Disposed, Is.EqualTo(1));
        await Wait.UntilAsync(() => session.Recorder.Events.Count >= 1, "the transaction recorded");
        Assert.That(session.Recorder.Events.Single().Stages, Is.EqualTo(OwnStages.Passed), "what lets a trial free a user held back by failures of ours");
    }

    [Test]
    public async Task A_held_message_is_kept_by_the_hold_queue_the_client_gets_its_id_and_the_upstream_nothing()
    {
        await using var upstream = new ScriptedUpstream();
        var holds = new MemoryHolds();
        var finding = new StageFinding("score 9.0 (hold 8)", 9.0, ["TEST_MARKER"]);
        var pipeline = new MessagePipeline([new TraceHeaderStage(RelayHarness.HeloName, false), new VerdictStage(StageVerdict.Hold(finding), whole: true)], new MemorySpools(), holds);
        await using var session = MemorySession.Start(upstream.EndPoint, pipeline: pipeline);
        await session.StartDataAsync();

        await session.SendAsync(Body + ".\r\n");
        var final = await session.ReadReplyAsync();

        Assert.That(final.Text, Is.EqualTo("250 2.0.0 held for review as H1"));
        Assert.That(holds.Kept.Single(), Is.EqualTo(("verdict", "score 9.0 (hold 8)", Body)));
        Assert.That((await upstream.SessionAsync(0)).Messages, Is.Empty);
        // Its own outcome (issue 16): a held message relayed nothing; the quotas count it as held (MailPolicyTests).
        await Wait.UntilAsync(() => session.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(session.Recorder.Events.Single().Outcome, Is.EqualTo(TransactionOutcome.Held));
    }

    [Test]
    public async Task A_message_the_hold_queue_cannot_keep_gets_a_451_and_never_reaches_the_upstream()
    {
        await using var upstream = new ScriptedUpstream();
        var pipeline = new MessagePipeline([new VerdictStage(StageVerdict.Hold(new StageFinding("score 9.0")), whole: true)], new MemorySpools(), new MemoryHolds(failWith: "No space left on device"));
        await using var session = MemorySession.Start(upstream.EndPoint, pipeline: pipeline);
        await session.StartDataAsync();

        await session.SendAsync(Body + ".\r\n");
        var final = await session.ReadReplyAsync();

        Assert.That(final.Text, Does.StartWith("451 4.3.0 the message could not be held for review (No space left on device)"));
        Assert.That((await upstream.SessionAsync(0)).Messages, Is.Empty);

        // Our disk failed, not her content: another user filling the hold store's disk would otherwise get her suspended.
        // No content refusal (50 an hour suspend), no upstream deferral (the failure ratio), no unsent transaction.
        await Wait.UntilAsync(() => session.Recorder.Events.Count >= 1, "the transaction recorded");
        var recorded = session.Recorder.Events.Single();
        Assert.Multiple(() =>
        {
            Assert.That(recorded.ContentRefused, Is.False);
            Assert.That(recorded.Unsent, Is.Null, "not RefusedAtData (Suspension.UnsentLimit)");
            Assert.That(recorded.Outcome, Is.EqualTo(TransactionOutcome.Refused), "refused by us, not Deferred (the failure ratio counts an upstream's deferrals)");
        });
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_spool_that_cannot_keep_the_message_gets_a_451_the_session_goes_on_and_it_counts_as_our_failure(bool onReadBack)
    {
        // The spool's disk is full or failing (another user may have filled it), when it is written or when it is read back
        // for the upstream: before, the IOException cut the connection with no reply and the log said the client had gone
        // away. The reply does not carry the error (it names our paths).
        await using var upstream = new ScriptedUpstream();
        var spools = onReadBack ? new MemorySpools(failReadsWith: "No space left on device") : new MemorySpools(failWith: "No space left on device");
        var pipeline = new MessagePipeline([new VerdictStage(StageVerdict.Continue, whole: true)], spools);
        await using var session = MemorySession.Start(upstream.EndPoint, pipeline: pipeline);
        await session.StartDataAsync();

        await session.SendAsync(Body + ".\r\n");
        var final = await session.ReadReplyAsync();
        var noop = await session.CommandAsync("NOOP");

        Assert.That(final.Text, Is.EqualTo("451 4.3.0 the message could not be kept for the checks before relaying (a local error on our side, logged); try again later"));
        Assert.That(noop.Code, Is.EqualTo(250), "the session goes on");
        Assert.That((await upstream.SessionAsync(0)).Messages, Is.Empty);
        await Wait.UntilAsync(() => session.Recorder.Events.Count >= 1, "the transaction recorded");
        Assert.Multiple(() =>
        {
            Assert.That(session.Recorder.Events.Single().Unsent, Is.Null, "any user may have filled the disk: counted toward nothing");
            Assert.That(session.Recorder.Events.Single().Stages, Is.EqualTo(OwnStages.Failed), "but the breaker at MAIL");
            Assert.That(session.Recorder.Events.Single().Outcome, Is.EqualTo(TransactionOutcome.Refused));
            Assert.That(session.Log.Lines, Has.Some.Contains("could not be spooled for the message stages: No space left on device"));
        });
    }

    [Test]
    public async Task After_five_messages_our_disk_could_not_keep_the_next_mail_gets_a_451_before_anything_reaches_the_mx()
    {
        // Alice fills the disk, which she can: each message fails on our side after its MAIL and RCPTs reached the MX, and
        // counts toward nothing. Suspension.LocalFailureLimit (5 at its default) stops the loop at MAIL.
        await using var upstream = new ScriptedUpstream();
        var pipeline = new MessagePipeline([new VerdictStage(StageVerdict.Continue, whole: true)], new MemorySpools(failWith: "No space left on device"));
        await using var session = MemorySession.Start(upstream.EndPoint, pipeline: pipeline);
        await session.GreetAsync();
        for (var i = 0; i < 5; i++)
        {
            Assert.That((await session.CommandAsync("MAIL FROM:<alice@customer.test>")).Code, Is.EqualTo(250), $"message {i + 1}");
            Assert.That((await session.CommandAsync("RCPT TO:<bob@example.net>")).Code, Is.EqualTo(250));
            Assert.That((await session.CommandAsync("DATA")).Code, Is.EqualTo(354));
            Assert.That((await session.CommandAsync(Body + ".")).Text, Does.StartWith("451 4.3.0 the message could not be kept"));
        }

        var mail = await session.CommandAsync("MAIL FROM:<alice@customer.test>");
        var mailsUpstream = upstream.Sessions.Sum(s => s.Commands.Count(c => c.StartsWith("MAIL", StringComparison.Ordinal)));

        Assert.Multiple(() =>
        {
            Assert.That(mail.Text, Does.StartWith($"451 4.3.0 messages of user {RelayHarness.User} keep failing on our side (5 within the last 10 min").And.Contain("new messages are refused for 60 s more"));
            Assert.That(mailsUpstream, Is.EqualTo(5), "the sixth MAIL never reached the MX");
            Assert.That(session.Log.Lines, Has.Some.Contains($"messages of uid={RelayHarness.Uid} user={RelayHarness.User} keep failing on our side (5 within 10 min"));
            Assert.That(session.Policy.Suspensions.All, Is.Empty);
        });
    }

    [TestCase(false, UnsentKind.AbandonedInData)]
    [TestCase(true, null)]
    public async Task Data_below_the_minimum_rate_counts_as_abandoned_only_when_the_time_went_into_waiting_for_the_client(bool slowSpool, UnsentKind? expected)
    {
        // MAIL, RCPT, DATA and a trickle probes recipients like a hang-up does. But the rate's clock also runs while we
        // write (upstream, or here the spool), and a slow MX or disk must not charge an innocent client.
        await using var upstream = new ScriptedUpstream();
        var limits = MemorySession.Relaxed with { DataRateGrace = TimeSpan.FromSeconds(1), MinDataBytesPerSecond = 1024 };
        var pipeline = slowSpool ? new MessagePipeline([new VerdictStage(StageVerdict.Continue, whole: true)], new MemorySpools(appendDelay: TimeSpan.FromMilliseconds(700))) : null;
        await using var session = MemorySession.Start(upstream.EndPoint, limits, pipeline);
        await session.StartDataAsync();

        await session.SendAsync("Subject: slow\r\n\r\n");
        var reply = session.ReadReplyAsync(TimeSpan.FromSeconds(20));
        while (!reply.IsCompleted)
        {
            await session.SendAsync("x");
            await Task.WhenAny(reply, Task.Delay(slowSpool ? 50 : 200));
        }

        Assert.That((await reply).Text, Does.StartWith("421 4.4.2 ").And.Contain("slower than 1024 bytes/s"));
        await Wait.UntilAsync(() => session.Recorder.Events.Count >= 1, "the transaction recorded");
        Assert.That(session.Recorder.Events.Single().Unsent, Is.EqualTo(expected));
        Assert.That(session.Recorder.Events.Single().Stages, Is.EqualTo(slowSpool ? OwnStages.Failed : OwnStages.NotRun), "our slow writes: toward the breaker at MAIL");
    }

    [Test]
    public async Task Headers_a_stage_adds_on_completion_go_on_top_of_the_spooled_message_above_the_trace_header()
    {
        await using var upstream = new ScriptedUpstream();
        var signature = "DKIM-Signature: v=1; test\r\n";
        var pipeline = new MessagePipeline(
            [new TraceHeaderStage(RelayHarness.HeloName, false), new VerdictStage(StageVerdict.ContinueWith(Encoding.ASCII.GetBytes(signature)), whole: true)],
            new MemorySpools());
        await using var session = MemorySession.Start(upstream.EndPoint, pipeline: pipeline);
        await session.StartDataAsync();

        await session.SendAsync(Body + ".\r\n");
        var final = await session.ReadReplyAsync();

        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        var delivered = Encoding.ASCII.GetString((await upstream.SessionAsync(0)).Messages.Single());
        Assert.That(delivered, Does.StartWith(signature + "X-Interceptor-Origin: "));
        Assert.That(delivered, Does.EndWith(Body));
    }

    private sealed class HeaderStage(string header) : IMessageStage
    {
        public string Name => "header";

        public bool NeedsWholeMessage => false;

        public ReadOnlyMemory<byte> HeadersFor(MessageContext message) => Encoding.ASCII.GetBytes(header);

        public ValueTask<StageVerdict> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token) => ValueTask.FromResult(StageVerdict.Continue);
    }

    private sealed class VerdictStage(StageVerdict verdict, bool whole = false) : IMessageStage
    {
        public string Name => "verdict";

        public bool NeedsWholeMessage => whole;

        public ReadOnlyMemory<byte> HeadersFor(MessageContext message) => ReadOnlyMemory<byte>.Empty;

        public ValueTask<StageVerdict> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token) => ValueTask.FromResult(verdict);
    }

    private sealed class WholeMessageStage : IMessageStage
    {
        public string Name => "whole-message";

        public bool NeedsWholeMessage => true;

        public string? Seen { get; private set; }

        public ReadOnlyMemory<byte> HeadersFor(MessageContext message) => ReadOnlyMemory<byte>.Empty;

        public async ValueTask<StageVerdict> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token)
        {
            using var reader = new StreamReader(spool!.OpenRead(), Encoding.ASCII);
            Seen = await reader.ReadToEndAsync(token);
            return StageVerdict.Continue;
        }
    }

    /// <summary>Keeps held messages in memory, ids H1, H2, ...; or fails as a full disk would.</summary>
    private sealed class MemoryHolds(string? failWith = null) : IMessageHolding
    {
        public List<(string Stage, string Finding, string Message)> Kept { get; } = [];

        public async ValueTask<string> HoldAsync(MessageContext message, IMessageSpool spool, string stage, StageFinding finding, CancellationToken token)
        {
            if (failWith is not null)
            {
                throw new IOException(failWith);
            }

            using var reader = new StreamReader(spool.OpenRead(), Encoding.ASCII);
            Kept.Add((stage, finding.Summary, await reader.ReadToEndAsync(token)));
            return $"H{Kept.Count}";
        }
    }

    /// <summary>Spools in memory: what a disk spool will do, for the seam's tests.</summary>
    /// <param name="failWith">Every append fails with an IOException of this message (a full disk).</param>
    /// <param name="appendDelay">Every append takes this long (a slow disk).</param>
    /// <param name="failReadsWith">Reading the spool back fails with an IOException of this message.</param>
    private sealed class MemorySpools(string? failWith = null, TimeSpan appendDelay = default, string? failReadsWith = null) : IMessageSpoolFactory
    {
        private int _disposed;

        public int Disposed => _disposed;

        private string? FailWith => failWith;

        private TimeSpan AppendDelay => appendDelay;

        private string? FailReadsWith => failReadsWith;

        public ValueTask<IMessageSpool> CreateAsync(MessageContext message, CancellationToken token) => ValueTask.FromResult<IMessageSpool>(new Spool(this));

        private sealed class Spool(MemorySpools owner) : IMessageSpool
        {
            private readonly MemoryStream _bytes = new();

            public long Length => _bytes.Length;

            public async ValueTask AppendAsync(ReadOnlyMemory<byte> bytes, CancellationToken token)
            {
                if (owner.FailWith is { } failure)
                {
                    throw new IOException(failure);
                }

                if (owner.AppendDelay > TimeSpan.Zero)
                {
                    await Task.Delay(owner.AppendDelay, token);
                }

                await _bytes.WriteAsync(bytes, token);
            }

            public Stream OpenRead() => owner.FailReadsWith is { } failure ? new FailingStream(failure) : new MemoryStream(_bytes.ToArray(), writable: false);

            public ValueTask DisposeAsync()
            {
                Interlocked.Increment(ref owner._disposed);
                return _bytes.DisposeAsync();
            }
        }
    }

    /// <summary>A read-back that fails on its first read, as a disk error would.</summary>
    private sealed class FailingStream(string failure) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => 0; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => throw new IOException(failure);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromException<int>(new IOException(failure));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
