using System.Collections.Concurrent;
using Interceptor.Smtp.Session;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>Transaction ids keep the form Guid.CreateVersion7 gave them (hold ids, the trace header), without a system call each, and in order.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class TransactionIdsTests
{
    [Test]
    public void An_id_is_a_version_7_uuid_of_the_given_millisecond_in_32_lower_case_hex_digits()
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_123_456);
        var id = new TransactionIds().NextAt(at);

        var guid = Guid.ParseExact(id, "N");
        var reference = Guid.CreateVersion7(at).ToString("N");
        Assert.Multiple(() =>
        {
            Assert.That(id, Does.Match("^[0-9a-f]{32}$"), "the hold store's id pattern");
            Assert.That(guid.Version, Is.EqualTo(7));
            Assert.That(guid.Variant, Is.InRange(8, 11), "RFC 9562 variant (binary 10xx)");
            Assert.That(Convert.ToInt64(id[..12], 16), Is.EqualTo(at.ToUnixTimeMilliseconds()), "the first 48 bits are the Unix milliseconds");
            // The runtime's own UUIDv7 of the same millisecond: same timestamp digits, same version digit, same layout.
            Assert.That(id[..13], Is.EqualTo(reference[..13]), "what Guid.CreateVersion7(at).ToString(\"N\") gives, up to the random bits");
        });
    }

    [Test]
    public void Without_a_time_the_id_is_of_the_current_millisecond()
    {
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var id = TransactionIds.Next();
        var after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        Assert.That(Convert.ToInt64(id[..12], 16), Is.InRange(before, after));
    }

    [Test]
    public void Ids_of_later_milliseconds_sort_after_earlier_ones()
    {
        var ids = new TransactionIds();
        var first = ids.NextAt(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000));
        var second = ids.NextAt(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_001));
        Assert.That(string.CompareOrdinal(first, second), Is.LessThan(0));
    }

    [Test]
    public void Ids_of_one_millisecond_on_several_threads_are_distinct_and_each_later_than_the_last()
    {
        // 4 threads × 5,000 ids of one millisecond: each thread refills its 4 KiB of random bytes about a dozen times, and
        // the 4,096 counter values of the millisecond run out, so later ids carry into the next ones.
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);
        var generator = new TransactionIds();
        var perThread = new ConcurrentBag<List<string>>();
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            var mine = new List<string>();
            for (var i = 0; i < 5_000; i++)
            {
                mine.Add(generator.NextAt(at));
            }

            perThread.Add(mine);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        var all = perThread.SelectMany(ids => ids).ToList();
        var milliseconds = all.Select(id => Convert.ToInt64(id[..12], 16)).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(all.Distinct(StringComparer.Ordinal).Count(), Is.EqualTo(20_000));
            Assert.That(perThread.All(ids => ids.Zip(ids.Skip(1)).All(p => string.CompareOrdinal(p.First, p.Second) < 0)), Is.True,
                "each thread's ids in the order it made them");
            Assert.That(milliseconds.Min(), Is.EqualTo(at.ToUnixTimeMilliseconds()));
            // The first millisecond's counter starts below 2,048 and holds at least 2,049; the next ones carried into hold 4,096.
            Assert.That(milliseconds.Max(), Is.InRange(at.ToUnixTimeMilliseconds() + 4, at.ToUnixTimeMilliseconds() + 5), "20,000 ids carry over five or six milliseconds");
            Assert.That(all.Select(id => Convert.ToInt32(id[13..16], 16)).Min(), Is.LessThan(2048), "the first millisecond's counter starts below the guard bit");
            Assert.That(all.All(id => Guid.ParseExact(id, "N").Version == 7 && Guid.ParseExact(id, "N").Variant is >= 8 and <= 11), Is.True);
        });
    }

    [Test]
    public void A_new_milliseconds_counter_starts_at_a_random_value_below_the_guard_bit()
    {
        var ids = new TransactionIds();
        var starts = Enumerable.Range(0, 64)
            .Select(i => Convert.ToInt32(ids.NextAt(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000 + i))[13..16], 16))
            .ToList();

        Assert.Multiple(() =>
        {
            Assert.That(starts, Has.All.LessThan(2048));
            Assert.That(starts.Distinct().Count(), Is.GreaterThan(32), "not a count of the host's ids: random starts");
        });
    }

    [Test]
    public void Later_ids_of_a_millisecond_count_on_by_one_from_its_first()
    {
        var ids = new TransactionIds();
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);
        var counters = Enumerable.Range(0, 5).Select(_ => Convert.ToInt32(ids.NextAt(at)[13..16], 16)).ToList();

        Assert.That(counters.Skip(1), Is.EqualTo(counters.Take(4).Select(c => c + 1)), "only the first id of a millisecond starts at random");
    }

    [Test]
    public void Ids_made_after_the_clock_was_set_back_still_sort_after_the_earlier_ones()
    {
        var ids = new TransactionIds();
        var before = ids.NextAt(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_500));
        var after = ids.NextAt(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000));

        Assert.Multiple(() =>
        {
            Assert.That(string.CompareOrdinal(before, after), Is.LessThan(0));
            Assert.That(after[..12], Is.EqualTo(before[..12]), "the last id's millisecond, counted on");
        });
    }
}
