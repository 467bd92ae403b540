using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;

namespace Interceptor.Smtp.Session;

/// <summary>
/// Transaction ids: UUIDv7 (RFC 9562: 48 bits of Unix milliseconds, 12 of rand_a, 62 random bits) as 32 lower-case hex
/// digits, the form <c>Guid.CreateVersion7().ToString("N")</c> gives. Made here because that call reads /dev/urandom
/// once per id on this runtime: a system call per message on the socket thread (issue 19). The random bits come from
/// the system's CSPRNG all the same, drawn 4 KiB at a time into a buffer of the calling thread's own.
/// </summary>
/// <remarks>
/// Ids are handed out in the order they were made, on every thread together: rand_a holds the time within the
/// millisecond in 4,096ths (about 244 ns; RFC 9562 §6.2, method 3), so ids sort as their times do, and an id made in
/// the same 4,096th as the last one (or with the clock set back) takes the next value after it, carrying into the next
/// millisecond when the 4,096 are spent. rand_a is not a count of ids: two ids a customer sees in its trace headers
/// differ by the time between them, whatever the host made for others meanwhile (steps of one from a counter told exactly
/// how many; random steps still gave an estimate). When the wall clock is set back (an NTP step, <c>date</c>, a virtual
/// machine resumed), ids go on from the last one at the pace of the monotonic clock, not one value per id, until the wall
/// clock has caught up: the gap between two ids stays the time between them then too.
/// </remarks>
internal sealed class TransactionIds
{
    private const int FractionBits = 12;
    private const int RandomBytesPerId = 8; // rand_b's 62 bits, rounded up to whole bytes
    private const int BufferBytes = 4096;

    // A wall clock further behind the last id than this was set back. Less is two threads racing between reading the clock
    // and claiming (a thread preempted in between), where the next value after the last one is right.
    private const long StepBack = 1L << FractionBits; // a millisecond

    /// <summary>The daemon's ids.</summary>
    public static readonly TransactionIds Shared = new();

    // Per thread: no lock on the message path, and no byte is ever handed to two ids.
    [ThreadStatic]
    private static byte[]? t_random;

    [ThreadStatic]
    private static int t_next;

    // The last id's milliseconds and fraction, as (ms << 12) | fraction; 1970 before the first (not long.MinValue: the
    // step-back check subtracts from it).
    private long _last;

    // Set only while the wall clock is behind the ids handed out: the position of the id that found it so, and the
    // monotonic time then. Ids count on from there at the monotonic clock's pace (from one fixed point, so no rounding adds
    // up to a count), until the wall clock is past that again.
    private Behind? _behind;

    public static string Next() => Shared.NextAt(DateTimeOffset.UtcNow, Stopwatch.GetElapsedTime(0));

    /// <summary>
    /// An id of <paramref name="now"/>'s 4,096th of a millisecond, or just after the last id made if that is later.
    /// <paramref name="monotonic"/> is a clock that is never set (<see cref="Stopwatch"/>'s), read at the same moment.
    /// </summary>
    public string NextAt(DateTimeOffset now, TimeSpan monotonic)
    {
        var ordered = Claim(CarryOn(PositionOf(now), monotonic), monotonic);
        Span<byte> id = stackalloc byte[16];
        Span<byte> time = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(time, ordered >> FractionBits);
        time[2..].CopyTo(id); // the low 48 bits
        var fraction = (int)(ordered & ((1 << FractionBits) - 1));
        id[6] = (byte)(0x70 | (fraction >> 8)); // version 7, then the fraction's high 4 bits
        id[7] = (byte)fraction;
        TakeRandom(id[8..]);
        id[8] = (byte)(0x80 | (id[8] & 0x3F)); // variant 10 (RFC 9562)
        return Convert.ToHexStringLower(id);
    }

    /// <summary>(Unix milliseconds &lt;&lt; 12) | the time within that millisecond in 4,096ths.</summary>
    private static long PositionOf(DateTimeOffset now)
    {
        var (milliseconds, ticksWithin) = Math.DivRem(now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks, TimeSpan.TicksPerMillisecond);
        return (milliseconds << FractionBits) | ((ticksWithin << FractionBits) / TimeSpan.TicksPerMillisecond);
    }

    private static long FractionsIn(TimeSpan elapsed) => (elapsed.Ticks << FractionBits) / TimeSpan.TicksPerMillisecond;

    // While the wall clock is behind: where the ids stood then plus the monotonic time since, unless the wall clock is
    // past that again (then the ids follow it, and the marker goes).
    private long CarryOn(long position, TimeSpan monotonic)
    {
        if (Volatile.Read(ref _behind) is not { } behind)
        {
            return position;
        }

        var carried = behind.Position + FractionsIn(monotonic - behind.Since);
        if (carried > position)
        {
            return carried;
        }

        Interlocked.CompareExchange(ref _behind, null, behind);
        return position;
    }

    // The position itself, or one past the last id handed out when that is not earlier (same 4,096th, clock set back).
    private long Claim(long position, TimeSpan monotonic)
    {
        var last = Volatile.Read(ref _last);
        while (true)
        {
            var next = position > last ? position : last + 1;
            var seen = Interlocked.CompareExchange(ref _last, next, last);
            if (seen == last)
            {
                if (position < last - StepBack)
                {
                    // The wall clock was set back: the ids after this one count on from it by the monotonic clock.
                    Interlocked.CompareExchange(ref _behind, new Behind(next, monotonic), null);
                }

                return next;
            }

            last = seen;
        }
    }

    private sealed record Behind(long Position, TimeSpan Since);

    private static void TakeRandom(Span<byte> into)
    {
        var buffer = t_random ??= new byte[BufferBytes];
        if (t_next == 0 || t_next + RandomBytesPerId > BufferBytes)
        {
            RandomNumberGenerator.Fill(buffer);
            t_next = 0;
        }

        buffer.AsSpan(t_next, RandomBytesPerId).CopyTo(into);

        // Spent bytes are cleared, so nothing of a past id stays in the buffer.
        buffer.AsSpan(t_next, RandomBytesPerId).Clear();
        t_next += RandomBytesPerId;
    }
}
