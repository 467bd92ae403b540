using System.Net;
using Interceptor.Core.Options;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Scan;
using Interceptor.Smtp.Session;
using Interceptor.Tests.Smtp.Session;

namespace Interceptor.Tests.Smtp.Scan;

/// <summary>Scan.MaxConcurrentPerUser: one customer's slow scans cannot hold the shared scanner while others wait.</summary>
[TestFixture]
public class PerUserScanSlotsTests
{
    private const string Body = "Subject: offer\r\n\r\nbuy now\r\n";

    [TestCase(ScanErrorAction.TempFail)]
    [TestCase(ScanErrorAction.Accept)]
    public async Task A_users_scans_beyond_the_bound_wait_for_her_own_and_time_out_naming_the_key_while_another_users_scan_goes_ahead(ScanErrorAction onError)
    {
        // Whatever Scan.OnError says: with Accept, two slow messages would otherwise let a third through unscanned.
        var scanner = new GatedScanner();
        var options = new ScanOptions { Engine = ScanEngine.Spamd, Timeout = TimeSpan.FromSeconds(1), MaxConcurrentPerUser = 2, OnError = onError };
        var stage = new ScanStage(scanner, options, "relay.test", canHold: false, new RecordingLogger());
        await using var spool = await FakeScanner.SpoolAsync(Body);

        // Alice's two scans are at the scanner and never end by themselves (content slow to scan).
        var first = stage.CompleteAsync(Message(1001, "alice"), spool, CancellationToken.None).AsTask();
        var second = stage.CompleteAsync(Message(1001, "alice"), spool, CancellationToken.None).AsTask();
        await Wait.UntilAsync(() => scanner.Started == 2, "alice's two scans at the scanner");

        var third = stage.CompleteAsync(Message(1001, "alice"), spool, CancellationToken.None).AsTask();
        var bobs = await stage.CompleteAsync(Message(1002, "bob"), spool, CancellationToken.None);
        var thirds = await Wait.ForAsync(third, "alice's third scan to time out");

        Assert.Multiple(() =>
        {
            Assert.That(bobs.Decision, Is.EqualTo(StageDecision.Continue), "bob is scanned while alice's scans hold theirs");
            Assert.That(thirds.Decision, Is.EqualTo(StageDecision.Defer));
            Assert.That(thirds.Reply!.ToWire().TrimEnd(), Is.EqualTo(
                "451 4.7.0 the message could not be scanned for spam (no free scan slot within 1 s (Scan.TimeoutSeconds): 2 scans of user alice already running (Scan.MaxConcurrentPerUser)); try again later"));
            Assert.That(scanner.Started, Is.EqualTo(3), "alice's third never reached the scanner");
        });

        // Her slots come back when her scans end: the next one goes straight to the scanner.
        scanner.Release();
        await Wait.ForAsync(Task.WhenAll(first, second), "alice's first two scans");
        var fourth = await stage.CompleteAsync(Message(1001, "alice"), spool, CancellationToken.None);
        Assert.That(fourth.Decision, Is.EqualTo(StageDecision.Continue));
    }

    [Test]
    public async Task A_scan_that_got_its_slot_late_still_has_a_whole_timeout_so_accept_never_lets_it_through_unjudged()
    {
        // OnError=Accept. Alice's two slow messages hold her slots for 0.8 s of the 1 s timeout; her third, spam, gets a slot
        // then and takes 0.5 s to score. With one budget for the wait and the scan it was cut at 1 s and accepted unscanned.
        var scanner = new GatedScanner(spamScanTime: TimeSpan.FromMilliseconds(500));
        var options = new ScanOptions { Engine = ScanEngine.Spamd, Timeout = TimeSpan.FromSeconds(1), MaxConcurrentPerUser = 2, OnError = ScanErrorAction.Accept };
        var stage = new ScanStage(scanner, options, "relay.test", canHold: false, new RecordingLogger());
        await using var spool = await FakeScanner.SpoolAsync(Body);
        var slow = new[]
        {
            stage.CompleteAsync(Message(1001, "alice"), spool, CancellationToken.None).AsTask(),
            stage.CompleteAsync(Message(1001, "alice"), spool, CancellationToken.None).AsTask(),
        };
        await Wait.UntilAsync(() => scanner.Started == 2, "alice's two scans at the scanner");

        var spam = stage.CompleteAsync(Message(1001, "alice", "spam"), spool, CancellationToken.None).AsTask();
        await Task.Delay(800);
        scanner.Release();
        var verdict = await Wait.ForAsync(spam, "the spam's verdict");
        await Wait.ForAsync(Task.WhenAll(slow), "the slow ones");

        Assert.That(verdict.Decision, Is.EqualTo(StageDecision.Refuse), "judged (score 20), not accepted unscanned");
    }

    [Test]
    public async Task A_wait_given_up_and_every_lease_returned_leave_no_entry_behind()
    {
        var slots = new PerUserScanSlots(1);
        var held = await slots.EnterAsync(7, CancellationToken.None);
        using var giveUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        Assert.That(async () => await slots.EnterAsync(7, giveUp.Token), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(slots.InUse(7), Is.EqualTo(1), "the holder only");

        held.Dispose();
        held.Dispose();
        Assert.That(slots.InUse(7), Is.Zero, "a lease given back twice counts once");
        using var again = await slots.EnterAsync(7, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(slots.InUse(7), Is.EqualTo(1));
    }

    private static MessageContext Message(uint uid, string user, string id = "") =>
        new(new ConnectionOrigin(uid, user, new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Parse("192.0.2.25"), 25)), id == "" ? "tx-" + user : id, user + "@customer.test", ["x@example.net"]);

    /// <summary>
    /// Alice's scans wait until released, ignoring the token (a scanner slow to give up); anyone else's pass at once. A
    /// message with the id "spam" takes <paramref name="spamScanTime"/> (honouring the token) and scores 20.
    /// </summary>
    private sealed class GatedScanner(TimeSpan spamScanTime = default) : IContentScanner
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _started;

        public int Started => Volatile.Read(ref _started);

        public string Name => "gated";

        public void Release() => _release.SetResult();

        public async Task<ScanResult> ScanAsync(ScanRequest request, CancellationToken token)
        {
            Interlocked.Increment(ref _started);
            if (request.Message.TransactionId == "spam")
            {
                await Task.Delay(spamScanTime, token);
                return new ScanResult(20, ["SPAM"]);
            }

            if (request.Message.Origin.User == "alice")
            {
                await _release.Task;
            }

            return new ScanResult(0, []);
        }
    }
}
