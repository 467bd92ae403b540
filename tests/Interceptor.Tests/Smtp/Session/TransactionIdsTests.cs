using System.Collections.Concurrent;
using Interceptor.Smtp.Session;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>Transaction ids keep the form Guid.CreateVersion7 gave them (hold ids, the trace header), without a system call each, and in order.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class TransactionIdsTests
{
    /// <summary>rand_a: the time within the millisecond in 4,096ths.</summary>
    private static int Fraction(string id) => Convert.ToInt32(id[13..16], 16);

    private static bool IsVersion7(string id) => id[12] == '7' && "89ab".Contains(id[16], StringComparison.Ordinal);

    private static long Milliseconds(string id) => Convert.ToInt64(id[..12], 16);

    /// <summary>A monotonic clock that stands still, as the wall clock does in these tests, unless a test moves it.</summary>
    private static readonly TimeSpan Monotonic = TimeSpan.FromHours(5);

    [Test]
    public void An_id_is_a_version_7_uuid_of_the_given_millisecond_in_32_lower_case_hex_digits()
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_123_456);
        var id = new TransactionIds().NextAt(at, Monotonic);

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
        var first = ids.NextAt(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000), Monotonic);
        var second = ids.NextAt(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_001), Monotonic);
        Assert.That(string.CompareOrdinal(first, second), Is.LessThan(0));
    }

    [Test]
    public void Ids_of_one_instant_on_several_threads_are_distinct_and_each_later_than_the_last()
    {
        // 4 threads × 5,000 ids of one instant: each thread refills its 4 KiB of random bytes about a dozen times, and
        // the 4,096 values of a millisecond run out, so later ids carry into the next ones.
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);
        var generator = new TransactionIds();
        var perThread = new ConcurrentBag<List<string>>();
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            var mine = new List<string>();
            for (var i = 0; i < 5_000; i++)
            {
                mine.Add(generator.NextAt(at, Monotonic));
            }

            perThread.Add(mine);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        var all = perThread.SelectMany(ids => ids).ToList();
        var milliseconds = all.Select(Milliseconds).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(all.Distinct(StringComparer.Ordinal).Count(), Is.EqualTo(20_000));
            Assert.That(perThread.All(ids => ids.Zip(ids.Skip(1)).All(p => string.CompareOrdinal(p.First, p.Second) < 0)), Is.True,
                "each thread's ids in the order it made them");
            Assert.That(milliseconds.Min(), Is.EqualTo(at.ToUnixTimeMilliseconds()));
            Assert.That(milliseconds.Max(), Is.EqualTo(at.ToUnixTimeMilliseconds() + 4), "20,000 ids fill five milliseconds' 4,096 values");
            // Two of 20,000 random 62-bit tails collide with a chance of about 4e-11; a buffer never refilled repeats at once.
            Assert.That(all.Select(id => id[16..]).Distinct(StringComparer.Ordinal).Count(), Is.EqualTo(20_000), "random bits never handed out twice");
            Assert.That(all.All(IsVersion7), Is.True);
        });
    }

    [Test]
    public void Rand_a_is_the_time_within_the_millisecond_in_4096ths()
    {
        var ids = new TransactionIds();
        var millisecond = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);

        Assert.Multiple(() =>
        {
            Assert.That(Fraction(ids.NextAt(millisecond, Monotonic)), Is.Zero);
            Assert.That(Fraction(ids.NextAt(millisecond.AddTicks(2_500), Monotonic)), Is.EqualTo(1_024), "a quarter of a millisecond");
            Assert.That(Fraction(ids.NextAt(millisecond.AddTicks(5_000), Monotonic)), Is.EqualTo(2_048));
            Assert.That(Fraction(ids.NextAt(millisecond.AddTicks(9_999), Monotonic)), Is.EqualTo(4_095), "the last 100 ns of it");
            Assert.That(Milliseconds(ids.NextAt(millisecond.AddTicks(10_000), Monotonic)), Is.EqualTo(millisecond.ToUnixTimeMilliseconds() + 1));
        });
    }

    [Test]
    public void An_id_does_not_tell_how_many_ids_were_made_before_it()
    {
        // Alice's two ids, with and without a hundred made for others between them (each in a 4,096th of its own): the
        // same values up to the random bits. With a counter, the second id's counter was one more per id between.
        var millisecond = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);
        var (first, second) = (millisecond.AddTicks(100), millisecond.AddTicks(9_000));

        var quiet = new TransactionIds();
        var quietIds = (quiet.NextAt(first, Monotonic), quiet.NextAt(second, Monotonic));
        var busy = new TransactionIds();
        var busyFirst = busy.NextAt(first, Monotonic);
        for (var i = 1; i <= 100; i++)
        {
            busy.NextAt(millisecond.AddTicks(100 + (i * 80)), Monotonic);
        }

        var busySecond = busy.NextAt(second, Monotonic);
        Assert.Multiple(() =>
        {
            Assert.That(busyFirst[..16], Is.EqualTo(quietIds.Item1[..16]));
            Assert.That(busySecond[..16], Is.EqualTo(quietIds.Item2[..16]), "the ids made between them left no trace");
        });
    }

    [Test]
    public void An_id_in_the_same_4096th_as_the_last_takes_the_next_value()
    {
        var ids = new TransactionIds();
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000).AddTicks(5_000);
        var fractions = Enumerable.Range(0, 3).Select(_ => Fraction(ids.NextAt(at, Monotonic))).ToList();

        Assert.That(fractions, Is.EqualTo(new[] { 2_048, 2_049, 2_050 }));
    }

    [Test]
    public void Ids_made_after_the_clock_was_set_back_still_sort_after_the_earlier_ones()
    {
        var ids = new TransactionIds();
        var before = ids.NextAt(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_500), Monotonic);
        var after = ids.NextAt(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000), Monotonic);

        Assert.Multiple(() =>
        {
            Assert.That(string.CompareOrdinal(before, after), Is.LessThan(0));
            Assert.That(after[..12], Is.EqualTo(before[..12]), "the last id's millisecond, counted on");
            Assert.That(Fraction(after), Is.EqualTo(Fraction(before) + 1));
        });
    }

    /// <summary>The ids' place in order: (milliseconds &lt;&lt; 12) | rand_a.</summary>
    private static long Position(string id) => (Milliseconds(id) << 12) | (uint)Fraction(id);

    [Test]
    public void After_the_clock_was_set_back_an_id_still_does_not_tell_how_many_ids_were_made_before_it()
    {
        // The last id before the step, then both clocks on 1 ms with the wall clock a second behind. Alice's two ids 500 µs
        // apart, with and without a hundred made for others between them (4 µs apart): the same values up to the random
        // bits, 250 µs apart (half pace while the step is bridged). Counting on by one an id gave away the hundred.
        var wall = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);

        (string First, string Second) Alice(bool busy)
        {
            var ids = new TransactionIds();
            ids.NextAt(wall, Monotonic);
            var first = ids.NextAt(wall.AddMilliseconds(1).AddSeconds(-1), Monotonic + TimeSpan.FromMilliseconds(1));
            for (var i = 1; busy && i <= 100; i++)
            {
                var later = TimeSpan.FromMilliseconds(1) + TimeSpan.FromTicks(i * 40);
                ids.NextAt(wall.AddSeconds(-1) + later, Monotonic + later);
            }

            var after = TimeSpan.FromMilliseconds(1.5);
            return (first, ids.NextAt(wall.AddSeconds(-1) + after, Monotonic + after));
        }

        var quiet = Alice(busy: false);
        var busy = Alice(busy: true);
        Assert.Multiple(() =>
        {
            Assert.That(busy.First[..16], Is.EqualTo(quiet.First[..16]));
            Assert.That(busy.Second[..16], Is.EqualTo(quiet.Second[..16]), "the ids made between them left no trace");
            Assert.That(Position(busy.Second) - Position(busy.First), Is.EqualTo(1_024), "250 µs: half the 500 µs between them");
            Assert.That(Milliseconds(busy.First), Is.EqualTo(wall.ToUnixTimeMilliseconds() + 1), "on from where the ids stood, not a second back");
        });
    }

    [Test]
    public void A_step_back_is_bridged_until_the_wall_clock_has_caught_up_then_the_ids_follow_it_again()
    {
        // Both clocks run on together after the wall clock was set back a second: the ids advance at half pace, and after
        // two seconds the wall clock is where they are. (Had they gone on at full pace, it would never catch up.)
        var wall = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);
        var ids = new TransactionIds();
        var last = ids.NextAt(wall, Monotonic);
        string At(double seconds) => ids.NextAt(wall.AddSeconds(seconds - 1), Monotonic + TimeSpan.FromSeconds(seconds));

        var justAfter = At(0.001);
        var halfWay = At(1);
        var caughtUp = At(2.1);
        var later = At(5);

        Assert.Multiple(() =>
        {
            Assert.That(string.CompareOrdinal(last, justAfter), Is.LessThan(0));
            Assert.That(Milliseconds(halfWay), Is.InRange(wall.ToUnixTimeMilliseconds() + 499, wall.ToUnixTimeMilliseconds() + 501),
                "a second after the step, half a second after the last id (the wall clock says it is at the last id's time)");
            Assert.That(Milliseconds(caughtUp), Is.EqualTo(wall.ToUnixTimeMilliseconds() + 1_100), "the wall clock's own time");
            Assert.That(Milliseconds(later), Is.EqualTo(wall.ToUnixTimeMilliseconds() + 4_000), "and from then on");
        });
    }

    [Test]
    public void A_thread_that_read_the_clocks_before_others_claimed_takes_the_next_value_and_moves_nothing()
    {
        // Its two clocks read together, then 5 ms of others' ids before it claims: not a step back.
        var wall = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);
        var ids = new TransactionIds();
        ids.NextAt(wall, Monotonic);
        string At(double milliseconds) => ids.NextAt(wall.AddMilliseconds(milliseconds), Monotonic + TimeSpan.FromMilliseconds(milliseconds));
        var others = Enumerable.Range(1, 50).Select(i => At(i * 0.1)).ToList();

        var late = At(0.05);
        var next = At(10);

        Assert.Multiple(() =>
        {
            Assert.That(Position(late), Is.EqualTo(Position(others[^1]) + 1));
            Assert.That(Milliseconds(next), Is.EqualTo(wall.ToUnixTimeMilliseconds() + 10));
            Assert.That(Fraction(next), Is.Zero, "the wall clock's own 4,096th");
        });
    }

    [Test]
    public void A_step_back_of_more_than_a_minute_is_not_bridged_the_ids_follow_the_wall_clock_at_once()
    {
        var wall = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);
        var ids = new TransactionIds();
        ids.NextAt(wall, Monotonic);
        var afterStep = ids.NextAt(wall.AddHours(-2).AddMilliseconds(1), Monotonic + TimeSpan.FromMilliseconds(1));
        var next = ids.NextAt(wall.AddHours(-2).AddMilliseconds(2), Monotonic + TimeSpan.FromMilliseconds(2));

        Assert.Multiple(() =>
        {
            Assert.That(Milliseconds(afterStep), Is.EqualTo(wall.AddHours(-2).ToUnixTimeMilliseconds() + 1));
            Assert.That(Milliseconds(next), Is.EqualTo(wall.AddHours(-2).ToUnixTimeMilliseconds() + 2));
            Assert.That(string.CompareOrdinal(afterStep, next), Is.LessThan(0), "in order among themselves");
        });
    }
}
