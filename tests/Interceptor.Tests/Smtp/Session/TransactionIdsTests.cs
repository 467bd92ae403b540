using System.Collections.Concurrent;
using Interceptor.Smtp.Session;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>Transaction ids keep the form Guid.CreateVersion7 gave them (hold ids, the trace header), without a system call each.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class TransactionIdsTests
{
    [Test]
    public void An_id_is_a_version_7_uuid_of_the_given_millisecond_in_32_lower_case_hex_digits()
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_123_456);
        var id = TransactionIds.Next(at);

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
        var first = TransactionIds.Next(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000));
        var second = TransactionIds.Next(DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_001));
        Assert.That(string.CompareOrdinal(first, second), Is.LessThan(0));
    }

    [Test]
    public void Ids_of_one_millisecond_on_several_threads_never_repeat_across_many_buffer_refills()
    {
        // 4 threads × 5,000 ids: each thread refills its 4 KiB of random bytes about a dozen times. The same millisecond
        // for all, so only the random bits tell them apart.
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_000);
        var ids = new ConcurrentBag<string>();
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            for (var i = 0; i < 5_000; i++)
            {
                ids.Add(TransactionIds.Next(at));
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.That(ids.Distinct(StringComparer.Ordinal).Count(), Is.EqualTo(20_000));
    }
}
