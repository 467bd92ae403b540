using System.Collections.Concurrent;
using Interceptor.Smtp.Session;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>Transaction ids keep the form Guid.CreateVersion7 gave them (hold ids, the trace header), without a system call each, and in order.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class TransactionIdsTests
{
    /// <summary>The 42-bit counter after the milliseconds: rand_a's 12 bits, then rand_b's top 30 past the variant.</summary>
    private static long Counter(string id) =>
        (Convert.ToInt64(id[13..16], 16) << 30) | ((Convert.ToInt64(id[16..18], 16) & 0x3F) << 24) | Convert.ToInt64(id[18..24], 16);

    private static long Milliseconds(string id) => Convert.ToInt64(id[..12], 16);

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
            Assert.That(Milliseconds(id), Is.EqualTo(at.ToUnixTimeMilliseconds()), "the first 48 bits are the Unix milliseconds");
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
        Assert.That(Milliseconds(id), Is.InRange(before, after));
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
        // 4 threads × 5,000 ids of one millisecond: each thread refills its 4 KiB of random bytes about twenty times.
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
        Assert.Multiple(() =>
        {
            Assert.That(all.Distinct(StringComparer.Ordinal).Count(), Is.EqualTo(20_000));
            Assert.That(perThread.All(ids => ids.Zip(ids.Skip(1)).All(p => string.CompareOrdinal(p.First, p.Second) < 0)), Is.True,
                "each thread's ids in the order it made them");
            Assert.That(all.Select(Milliseconds).Distinct(), Is.EqualTo(new[] { at.ToUnixTimeMilliseconds() }), "a millisecond's counter holds two million ids");
            Assert.That(all.All(id => Guid.ParseExact(id, "N").Version == 7 && Guid.ParseExact(id, "N").Variant is >= 8 and <= 11), Is.True);
        });
    }

    [Test]
    public void Ids_beyond_a_milliseconds_counter_carry_into_the_next_millisecond_in_order()
    {
        // Steps of up to 2^40 spend a counter that starts below 2^41 and ends at 2^42 within a few ids.
        var ids = new TransactionIds(stepBits: 40);
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);
        var made = Enumerable.Range(0, 200).Select(_ => ids.NextAt(at)).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(made.Zip(made.Skip(1)).All(p => string.CompareOrdinal(p.First, p.Second) < 0), Is.True, "in order across the carries");
            Assert.That(made.Select(Milliseconds).Max(), Is.GreaterThan(at.ToUnixTimeMilliseconds() + 5), "carried over several milliseconds");
            Assert.That(made.Select(Counter).Max(), Is.LessThan(1L << 42));
        });
    }

    [Test]
    public void A_new_milliseconds_counter_starts_at_a_random_value_below_the_guard_bit()
    {
        var ids = new TransactionIds();
        var starts = Enumerable.Range(0, 64)
            .Select(i => Counter(ids.NextAt(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000 + i))))
            .ToList();

        Assert.Multiple(() =>
        {
            Assert.That(starts, Has.All.LessThan(1L << 41));
            Assert.That(starts.Distinct().Count(), Is.EqualTo(64), "not a count of the host's ids: random starts");
            Assert.That(starts.Max(), Is.GreaterThan(1L << 39), "drawn over the whole range below the guard bit");
        });
    }

    [Test]
    public void Later_ids_of_a_millisecond_step_on_by_random_amounts_so_a_gap_does_not_count_the_ids_between()
    {
        var ids = new TransactionIds();
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);
        var counters = Enumerable.Range(0, 101).Select(_ => Counter(ids.NextAt(at))).ToList();
        var steps = counters.Zip(counters.Skip(1), (a, b) => b - a).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(steps, Has.All.InRange(1L, 1L << 20), "at least one, below 2^20");
            Assert.That(steps.Distinct().Count(), Is.GreaterThan(90), "random steps, not steps of one");
            // With steps of one, a customer's two ids would differ by exactly one more than the ids made between them.
            Assert.That(steps.Count(step => step == 1), Is.LessThan(3));
        });
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
