using System.Text;
using Interceptor.Core.Options;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Scan;
using Interceptor.Tests.Smtp.Session;

namespace Interceptor.Tests.Smtp.Scan;

/// <summary>Issue 16: what the scan stage makes of a score, a failure, a timeout and a message too big to scan.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class ScanStageTests
{
    private const string Body = "Subject: offer\r\n\r\nbuy now\r\n";

    private static readonly ScanOptions Options = new() { Engine = ScanEngine.Spamd, RejectScore = 15, HoldScore = 8, Timeout = TimeSpan.FromSeconds(1) };

    [Test]
    public async Task A_score_at_the_reject_limit_refuses_with_550_naming_score_limit_and_user_and_logs_the_top_symbols()
    {
        var log = new RecordingLogger();
        var stage = new ScanStage(new FixedScanner(new ScanResult(17.2, ["GTUBE", "A", "B", "C", "D", "E"])), Options, "relay.test", canHold: true, log);
        await using var spool = await FakeScanner.SpoolAsync(Body);

        var verdict = await stage.CompleteAsync(FakeScanner.Message("bob@example.net"), spool, CancellationToken.None);

        Assert.That(verdict.Decision, Is.EqualTo(StageDecision.Refuse));
        Assert.That(verdict.Reply!.ToWire().TrimEnd(), Is.EqualTo("550 5.7.1 message refused as spam (score 17.2, limit 15) for user alice"));
        Assert.That(verdict.Finding!.Score, Is.EqualTo(17.2));
        Assert.That(verdict.Finding.Symbols, Is.EqualTo(new[] { "GTUBE", "A", "B", "C", "D" }), "the top five");
        Assert.That(log.Lines, Has.Some.Contains("score 17.2 (limit 15), symbols GTUBE,A,B,C,D"));
    }

    [TestCase(14.9, StageDecision.Hold)]
    [TestCase(8.0, StageDecision.Hold)]
    [TestCase(7.9, StageDecision.Continue)]
    [TestCase(-2.0, StageDecision.Continue)]
    public async Task Scores_below_the_reject_limit_are_held_in_the_band_and_relayed_below_it(double score, StageDecision expected)
    {
        var stage = new ScanStage(new FixedScanner(new ScanResult(score, ["X"])), Options, "relay.test", canHold: true, new RecordingLogger());
        await using var spool = await FakeScanner.SpoolAsync(Body);

        var verdict = await stage.CompleteAsync(FakeScanner.Message(), spool, CancellationToken.None);

        Assert.That(verdict.Decision, Is.EqualTo(expected));
    }

    [Test]
    public async Task HoldScore_0_never_holds()
    {
        var stage = new ScanStage(new FixedScanner(new ScanResult(14, ["X"])), Options with { HoldScore = 0 }, "relay.test", canHold: true, new RecordingLogger());
        await using var spool = await FakeScanner.SpoolAsync(Body);

        Assert.That((await stage.CompleteAsync(FakeScanner.Message(), spool, CancellationToken.None)).Decision, Is.EqualTo(StageDecision.Continue));
    }

    [Test]
    public async Task Without_a_hold_store_the_hold_band_gets_451_never_a_250()
    {
        var stage = new ScanStage(new FixedScanner(new ScanResult(9, ["X"])), Options, "relay.test", canHold: false, new RecordingLogger());
        await using var spool = await FakeScanner.SpoolAsync(Body);

        var verdict = await stage.CompleteAsync(FakeScanner.Message(), spool, CancellationToken.None);

        Assert.That(verdict.Reply!.ToWire(), Does.StartWith("451 4.7.0 message held back as possible spam (score 9, hold 8) for user alice"));
    }

    [TestCase(ScanErrorAction.TempFail, StageDecision.Defer)]
    [TestCase(ScanErrorAction.Accept, StageDecision.Continue)]
    [TestCase(ScanErrorAction.Hold, StageDecision.Hold)]
    public async Task A_failed_scan_follows_OnError(ScanErrorAction onError, StageDecision expected)
    {
        var stage = new ScanStage(new FixedScanner(failure: "cannot connect to 127.0.0.1:783: Connection refused"), Options with { OnError = onError }, "relay.test", canHold: true, new RecordingLogger());
        await using var spool = await FakeScanner.SpoolAsync(Body);

        var verdict = await stage.CompleteAsync(FakeScanner.Message(), spool, CancellationToken.None);

        Assert.That(verdict.Decision, Is.EqualTo(expected));
        if (expected == StageDecision.Defer)
        {
            Assert.That(verdict.Reply!.ToWire().TrimEnd(), Is.EqualTo("451 4.7.0 the message could not be scanned for spam (cannot connect to 127.0.0.1:783: Connection refused); try again later"));
            Assert.That(verdict.Finding, Is.Null, "a scanner fault is not held against the user (our failure: counted toward no suspension rule)");
        }
    }

    [Test]
    public async Task A_scanner_that_never_answers_gets_451_within_the_timeout()
    {
        await using var scanner = new FakeScanner(reply: null);
        var stage = new ScanStage(new SpamdClient(scanner.Endpoint), Options, "relay.test", canHold: true, new RecordingLogger());
        await using var spool = await FakeScanner.SpoolAsync(Body);
        var watch = System.Diagnostics.Stopwatch.StartNew();

        var verdict = await stage.CompleteAsync(FakeScanner.Message(), spool, CancellationToken.None);

        Assert.That(verdict.Reply!.ToWire(), Does.StartWith("451 4.7.0 the message could not be scanned for spam (no verdict within 1 s (Scan.TimeoutSeconds))"));
        Assert.That(watch.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(0.9)).And.LessThan(TimeSpan.FromSeconds(5)));
    }

    [Test]
    public async Task A_message_over_MaxBytes_is_relayed_unscanned_and_the_log_says_so()
    {
        var scanner = new FixedScanner(new ScanResult(100, ["GTUBE"]));
        var log = new RecordingLogger();
        var stage = new ScanStage(scanner, Options with { MaxSize = ByteSize.FromBytes(10) }, "relay.test", canHold: true, log);
        await using var spool = await FakeScanner.SpoolAsync(Body);

        var verdict = await stage.CompleteAsync(FakeScanner.Message(), spool, CancellationToken.None);

        Assert.That(verdict.Decision, Is.EqualTo(StageDecision.Continue));
        Assert.That(scanner.Calls, Is.Zero);
        Assert.That(log.Lines, Has.Some.Contains($"not scanned: {Body.Length} bytes is over Scan.MaxBytes (10)"));
    }

    [Test]
    public async Task A_hold_band_score_reaches_the_hold_store_with_score_and_symbols_and_the_upstream_gets_nothing()
    {
        await using var upstream = new ScriptedUpstream();
        var holds = new RecordingHolds();
        var stage = new ScanStage(new FixedScanner(new ScanResult(9.5, ["BAYES_99", "URIBL_BLOCKED"])), Options, RelayHarness.HeloName, canHold: true, new RecordingLogger());
        var pipeline = new MessagePipeline([new TraceHeaderStage(RelayHarness.HeloName, false), stage], new FileMessageSpoolFactory(Path.Combine(Path.GetTempPath(), "smtpi-scan-tests"), 1 << 20), holds);
        await using var session = MemorySession.Start(upstream.EndPoint, pipeline: pipeline);
        await session.StartDataAsync();

        await session.SendAsync(Body + ".\r\n");
        var final = await session.ReadReplyAsync();

        Assert.That(final.Text, Is.EqualTo("250 2.0.0 held for review as H1"));
        var (stageName, finding, message) = holds.Kept.Single();
        Assert.That(stageName, Is.EqualTo("scan"));
        Assert.That(finding.Score, Is.EqualTo(9.5));
        Assert.That(finding.Symbols, Is.EqualTo(new[] { "BAYES_99", "URIBL_BLOCKED" }));
        Assert.That(finding.Summary, Is.EqualTo("spam score 9.5 (hold 8, reject 15) BAYES_99,URIBL_BLOCKED"));
        Assert.That(message, Is.EqualTo(Body));
        Assert.That((await upstream.SessionAsync(0)).Messages, Is.Empty);
    }

    private sealed class FixedScanner(ScanResult? result = null, string? failure = null) : IContentScanner
    {
        public int Calls { get; private set; }

        public string Name => "fixed";

        public Task<ScanResult> ScanAsync(ScanRequest request, CancellationToken token)
        {
            Calls++;
            return failure is not null ? Task.FromException<ScanResult>(new ScanFailedException(failure)) : Task.FromResult(result!);
        }
    }

    private sealed class RecordingHolds : IMessageHolding
    {
        public List<(string Stage, StageFinding Finding, string Message)> Kept { get; } = [];

        public async ValueTask<string> HoldAsync(MessageContext message, IMessageSpool spool, string stage, StageFinding finding, CancellationToken token)
        {
            using var reader = new StreamReader(spool.OpenRead(), Encoding.ASCII);
            Kept.Add((stage, finding, await reader.ReadToEndAsync(token)));
            return $"H{Kept.Count}";
        }
    }
}
