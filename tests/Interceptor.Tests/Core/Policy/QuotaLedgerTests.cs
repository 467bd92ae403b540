using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Core.Policy;

public class QuotaLedgerTests
{
    private static readonly QuotaLimits Limits = new QuotaLimits
    {
        MessagesPerHour = 3,
        MessagesPerDay = 5,
        RecipientsPerHour = 4,
        RecipientsPerDay = 10,
        Connections = 2,
    }.Or(QuotaLimits.Defaults);

    private ManualClock _clock = null!;
    private QuotaLedger _ledger = null!;

    [SetUp]
    public void Create()
    {
        _clock = new ManualClock(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
        _ledger = new QuotaLedger(_clock);
    }

    private void Deliver(uint uid, int recipients = 1)
    {
        Assert.That(_ledger.TryReserveMessage(uid, Limits, out _), Is.True);
        _ledger.Settle(uid, 1, 0, delivered: true, recipients);
    }

    [Test]
    public void The_hourly_message_quota_refuses_exactly_at_the_limit()
    {
        Deliver(1001);
        Deliver(1001);
        Deliver(1001);

        Assert.That(_ledger.TryReserveMessage(1001, Limits, out var exceeded), Is.False);
        Assert.That(exceeded, Is.EqualTo(new QuotaExceeded(RefusalKind.MessagesPerHour, 3, 3)));
        Assert.That(_ledger.TryReserveMessage(1002, Limits, out _), Is.True, "another user is not affected");
    }

    [Test]
    public void The_window_slides_instead_of_resetting()
    {
        Deliver(1001);
        _clock.Advance(TimeSpan.FromMinutes(30));
        Deliver(1001);
        Deliver(1001);
        _clock.Advance(TimeSpan.FromMinutes(29));
        Assert.That(_ledger.TryReserveMessage(1001, Limits, out _), Is.False, "59 minutes after the first, three are still in the hour");

        _clock.Advance(TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(1));
        Assert.That(_ledger.TryReserveMessage(1001, Limits, out _), Is.True, "the first left the window, one slot is free");
        Assert.That(_ledger.TryReserveMessage(1001, Limits, out _), Is.False, "and only one");
    }

    [Test]
    public void The_daily_quota_counts_across_hours()
    {
        for (var i = 0; i < 5; i++)
        {
            Deliver(1001);
            _clock.Advance(TimeSpan.FromHours(2));
        }

        Assert.That(_ledger.TryReserveMessage(1001, Limits, out var exceeded), Is.False);
        Assert.That(exceeded!.Kind, Is.EqualTo(RefusalKind.MessagesPerDay));

        _clock.Advance(TimeSpan.FromHours(15));
        Assert.That(_ledger.TryReserveMessage(1001, Limits, out _), Is.True, "a day after the first delivery it left the window");
    }

    [Test]
    public void Reservations_count_so_concurrent_sessions_cannot_overshoot()
    {
        Assert.That(_ledger.TryReserveMessage(1001, Limits, out _), Is.True);
        Assert.That(_ledger.TryReserveMessage(1001, Limits, out _), Is.True);
        Assert.That(_ledger.TryReserveMessage(1001, Limits, out _), Is.True);
        Assert.That(_ledger.TryReserveMessage(1001, Limits, out _), Is.False, "three in flight fill the hour");
    }

    [Test]
    public void Only_what_the_upstream_accepted_counts()
    {
        for (var i = 0; i < 10; i++)
        {
            Assert.That(_ledger.TryReserveMessage(1001, Limits, out _), Is.True);
            _ledger.Settle(1001, 1, 0, delivered: false, 0);
        }

        Assert.That(_ledger.Usage(1001), Is.EqualTo((0, 0, 0, 0)));
    }

    [Test]
    public void Recipients_are_counted_per_hour_and_released_when_refused()
    {
        for (var i = 0; i < 4; i++)
        {
            Assert.That(_ledger.TryReserveRecipient(1001, Limits, out _), Is.True);
        }

        Assert.That(_ledger.TryReserveRecipient(1001, Limits, out var exceeded), Is.False);
        Assert.That(exceeded, Is.EqualTo(new QuotaExceeded(RefusalKind.RecipientsPerHour, 4, 4)));

        _ledger.Settle(1001, 0, 1, delivered: false, 0);
        Assert.That(_ledger.TryReserveRecipient(1001, Limits, out _), Is.True, "a recipient the upstream refused gives its slot back");
    }

    [Test]
    public void Connections_are_capped_and_released()
    {
        Assert.That(_ledger.TryOpenConnection(1001, Limits, out _), Is.True);
        Assert.That(_ledger.TryOpenConnection(1001, Limits, out _), Is.True);
        Assert.That(_ledger.TryOpenConnection(1001, Limits, out var exceeded), Is.False);
        Assert.That(exceeded, Is.EqualTo(new QuotaExceeded(RefusalKind.Connections, 2, 2)));

        _ledger.CloseConnection(1001);
        Assert.That(_ledger.TryOpenConnection(1001, Limits, out _), Is.True);
    }

    [Test]
    public void Restored_deliveries_count_like_new_ones()
    {
        _ledger.AddDelivered(1001, _clock.Now.AddMinutes(-10), 2);
        _ledger.AddDelivered(1001, _clock.Now.AddMinutes(-50), 1);
        _ledger.AddDelivered(1001, _clock.Now.AddHours(-5), 1);

        Assert.That(_ledger.Usage(1001), Is.EqualTo((2, 3, 3, 4)));
    }

    [Test]
    public void The_reply_names_the_quota_the_user_and_the_count()
    {
        var reply = QuotaReplies.For(new QuotaExceeded(RefusalKind.MessagesPerHour, 200, 200), "alice");

        Assert.That(reply.ToWire(), Is.EqualTo("451 4.7.1 hourly message quota for user alice exhausted (200/200); try later\r\n"));
    }
    [Test]
    public void Running_totals_match_a_plain_recount_with_restored_entries_out_of_order_and_time_moving_on()
    {
        var random = new Random(20261127);
        var start = _clock.GetUtcNow();
        var all = new List<(DateTimeOffset At, int Recipients)>();

        // Restored deliveries of the last day, in the store's newest-first order (the worst case for the ledger).
        for (var i = 0; i < 3000; i++)
        {
            var at = start - TimeSpan.FromSeconds(random.Next(1, 86_400));
            var recipients = random.Next(1, 5);
            all.Add((at, recipients));
        }

        foreach (var (at, recipients) in all.OrderByDescending(e => e.At))
        {
            _ledger.AddDelivered(7, at, recipients);
        }

        for (var step = 0; step < 400; step++)
        {
            _clock.Advance(TimeSpan.FromSeconds(random.Next(0, 600)));
            var now = _clock.GetUtcNow();
            if (random.Next(3) == 0)
            {
                // An occasional late restore of an older entry, then the ordinary case: one delivered now.
                var late = (now - TimeSpan.FromSeconds(random.Next(1, 86_400)), random.Next(1, 5));
                _ledger.AddDelivered(7, late.Item1, late.Item2);
                all.Add(late);
            }

            var recipientsNow = random.Next(1, 5);
            _ledger.AddDelivered(7, now, recipientsNow);
            all.Add((now, recipientsNow));

            var day = all.Where(e => e.At > now - TimeSpan.FromDays(1)).ToList();
            var hour = day.Where(e => e.At > now - TimeSpan.FromHours(1)).ToList();
            Assert.That(_ledger.Usage(7), Is.EqualTo((hour.Count, day.Count, hour.Sum(e => e.Recipients), day.Sum(e => e.Recipients))), $"step {step}");
        }
    }
}
