using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Core.Policy;

public class TallyBookTests
{
    private static readonly DateTimeOffset Noon = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly string Reset = TallyEntry.UnsentKindName(UnsentKind.Reset);

    [Test]
    public void Events_of_one_user_kind_and_minute_become_one_entry_with_their_count_span_and_last_detail()
    {
        var book = new TallyBook();
        for (var i = 0; i < 1000; i++)
        {
            book.Add(TallyEntry.One(Noon.AddMilliseconds(i * 50), 1001, "alice", Reset, "Refused", $"aborted: RSET #{i}"));
        }

        var entries = book.Drain();

        Assert.That(entries, Has.Count.EqualTo(1));
        var entry = entries[0];
        Assert.Multiple(() =>
        {
            Assert.That(entry.Count, Is.EqualTo(1000));
            Assert.That(entry.Period, Is.EqualTo(Noon));
            Assert.That(entry.First, Is.EqualTo(Noon));
            Assert.That(entry.Last, Is.EqualTo(Noon.AddMilliseconds(999 * 50)));
            Assert.That(entry.Detail, Is.EqualTo("aborted: RSET #999"));
            Assert.That(book.IsEmpty, Is.True, "drained");
        });
    }

    [Test]
    public void Users_kinds_outcomes_and_minutes_are_counted_apart()
    {
        var book = new TallyBook();
        book.Add(TallyEntry.One(Noon, 1001, "alice", Reset, "Refused", "x"));
        book.Add(TallyEntry.One(Noon, 1002, "bob", Reset, "Refused", "x"));
        book.Add(TallyEntry.One(Noon, 1001, "alice", TallyEntry.UnsentKindName(UnsentKind.MailRefused), "Refused", "x"));
        book.Add(TallyEntry.One(Noon, 1001, "alice", TallyEntry.UnsentKindName(UnsentKind.UpstreamRefused), "Rejected", "x"));
        book.Add(TallyEntry.One(Noon, 1001, "alice", TallyEntry.UnsentKindName(UnsentKind.UpstreamRefused), "Deferred", "x"));
        book.Add(TallyEntry.One(Noon.AddSeconds(59), 1001, "alice", Reset, "Refused", "x"));
        book.Add(TallyEntry.One(Noon.AddSeconds(60), 1001, "alice", Reset, "Refused", "x"));

        var entries = book.Drain();

        Assert.That(entries.Select(e => (e.Uid, e.Kind, e.Outcome, e.Period.Minute, e.Count)), Is.EquivalentTo(new[]
        {
            (1001u, Reset, "Refused", 0, 2L),
            (1001u, Reset, "Refused", 1, 1L),
            (1002u, Reset, "Refused", 0, 1L),
            (1001u, "Unsent.MailRefused", "Refused", 0, 1L),
            (1001u, "Unsent.UpstreamRefused", "Rejected", 0, 1L),
            (1001u, "Unsent.UpstreamRefused", "Deferred", 0, 1L),
        }));
    }

    [Test]
    public void The_period_is_the_start_of_the_minute_and_a_long_detail_is_cut()
    {
        var entry = TallyEntry.One(new DateTimeOffset(2026, 12, 1, 12, 34, 56, 789, TimeSpan.Zero), 1, "u", Reset, "Refused", new string('x', 5000));

        Assert.Multiple(() =>
        {
            Assert.That(entry.Period, Is.EqualTo(new DateTimeOffset(2026, 12, 1, 12, 34, 0, TimeSpan.Zero)));
            Assert.That(entry.Detail, Has.Length.EqualTo(TallyEntry.MaxDetail));
            Assert.That(entry.Describe(), Does.StartWith("1 transaction ended before DATA (Unsent.Reset, Refused)"));
        });
    }

    [Test]
    public void Merging_keeps_the_later_detail_and_user_name_whatever_the_order()
    {
        var early = TallyEntry.One(Noon, 1, "old-name", Reset, "Refused", "early") with { Count = 5 };
        var late = TallyEntry.One(Noon.AddSeconds(10), 1, "new-name", Reset, "Refused", "late") with { Count = 7 };

        foreach (var merged in new[] { TallyBook.Merge(early, late), TallyBook.Merge(late, early) })
        {
            Assert.That((merged.Count, merged.First, merged.Last, merged.Detail, merged.User), Is.EqualTo((12L, Noon, Noon.AddSeconds(10), "late", "new-name")));
        }
    }

    [Test]
    public void Transactions_ended_before_data_suspend_at_the_unsent_limit_with_a_reason_that_says_what_the_user_did()
    {
        var clock = new ManualClock(Noon);
        var rules = new AutoSuspensionRules(new SuspensionOptions { UnsentLimit = 3, RefusalWindow = TimeSpan.FromMinutes(10) }, clock);

        Assert.That(rules.ObserveUnsent(1001, clock.Now, UnsentKind.Reset), Is.Null);
        Assert.That(rules.ObserveUnsent(1001, clock.Now, UnsentKind.Reset), Is.Null);
        Assert.That(rules.ObserveUnsent(1002, clock.Now, UnsentKind.MailRefused), Is.Null, "another user's count is separate");
        Assert.That(rules.ObserveUnsent(1001, clock.Now, UnsentKind.MailRefused),
            Is.EqualTo("3 transactions that relayed nothing within 10 min (limit 3), the last: MAIL refused (a parameter the upstream does not support)"));

        var off = new AutoSuspensionRules(new SuspensionOptions { UnsentLimit = 0 }, clock);
        Assert.That(Enumerable.Range(0, 5000).Select(_ => off.ObserveUnsent(1001, clock.Now, UnsentKind.Reset)), Has.All.Null, "0 disables");
    }
}
