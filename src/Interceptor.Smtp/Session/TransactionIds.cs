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
/// the same 4,096th as the last one takes the next value after it, carrying into the next millisecond when the 4,096 are
/// spent. rand_a is not a count of ids: two ids a customer sees in its trace headers differ by the time between them,
/// whatever the host made for others meanwhile (steps of one from a counter told exactly how many; random steps still
/// gave an estimate).
/// <para>
/// A wall clock set back (an NTP step, <c>date</c>, a virtual machine's clock corrected) shows as its lead over the
/// monotonic clock shrinking. Up to a minute back, the ids go on from where they stood at half the monotonic clock's
/// pace, so the wall clock catches up after twice the step, and the gap between two ids stays a measure of time, not of
/// ids (counting on by one an id gave the count away while the clock was behind). Further back than a minute, the ids
/// follow the wall clock at once and sort before the earlier ones (still unique: 62 random bits). Each thread reads both
/// clocks together, so a thread that waited between reading them and claiming does not look like a step.
/// </para>
/// </remarks>
internal sealed class TransactionIds
{
    private const int FractionBits = 12;
    private const int RandomBytesPerId = 8; // rand_b's 62 bits, rounded up to whole bytes
    private const int BufferBytes = 4096;

    // The wall clock's lead over the monotonic clock shrinking by more than this is a step back; less is NTP slewing it,
    // or the rounding of two clocks read a few nanoseconds apart.
    private const long StepBack = 1L << FractionBits; // a millisecond

    // A step back further than this is not bridged: a host's ids a day in the future help nobody.
    private const long LongestBridged = 60_000L << FractionBits; // a minute

    // Two readings of the monotonic clock further apart than this around the wall clock's (the thread was preempted
    // between them) are taken again: the pair would misstate the wall clock's lead.
    private static readonly long ReadWithin = Stopwatch.Frequency / 100_000; // 10 µs

    /// <summary>The daemon's ids.</summary>
    public static readonly TransactionIds Shared = new();

    // Per thread: no lock on the message path, and no byte is ever handed to two ids.
    [ThreadStatic]
    private static byte[]? t_random;

    [ThreadStatic]
    private static int t_next;

    // The last id's milliseconds and fraction, as (ms << 12) | fraction.
    private long _last;

    // The wall clock's lead over the monotonic clock as of a recent id, in 4,096ths of a millisecond; none before the first.
    private long _lead = long.MinValue;

    // Set only while a step back is being bridged: the lead the ids kept, and the monotonic time the step was found.
    private Bridge? _bridge;

    public static string Next()
    {
        var (wall, monotonic) = ReadClocks();
        return Shared.NextAt(wall, monotonic);
    }

    /// <summary>
    /// An id of <paramref name="now"/>'s 4,096th of a millisecond, or just after the last id made if that is later.
    /// <paramref name="monotonic"/> is a clock that is never set (<see cref="Stopwatch"/>'s), read together with it.
    /// </summary>
    public string NextAt(DateTimeOffset now, TimeSpan monotonic)
    {
        var (position, restart) = Place(PositionOf(now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks), PositionOf(monotonic.Ticks));
        var ordered = Claim(position, restart);
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

    private static (DateTimeOffset Wall, TimeSpan Monotonic) ReadClocks()
    {
        for (var attempt = 0; ; attempt++)
        {
            var before = Stopwatch.GetTimestamp();
            var wall = DateTimeOffset.UtcNow;
            var after = Stopwatch.GetTimestamp();
            if (after - before <= ReadWithin || attempt == 9)
            {
                return (wall, Stopwatch.GetElapsedTime(0, before + ((after - before) / 2)));
            }
        }
    }

    /// <summary>(milliseconds &lt;&lt; 12) | the time within that millisecond in 4,096ths, of a count of ticks.</summary>
    private static long PositionOf(long ticks)
    {
        var (milliseconds, ticksWithin) = Math.DivRem(ticks, TimeSpan.TicksPerMillisecond);
        return (milliseconds << FractionBits) | ((ticksWithin << FractionBits) / TimeSpan.TicksPerMillisecond);
    }

    // Where this id goes by the clocks (Claim then keeps the order), and whether it starts the order afresh.
    private (long Position, bool Restart) Place(long wall, long monotonic)
    {
        var lead = wall - monotonic;
        if (Volatile.Read(ref _bridge) is { } bridge)
        {
            // Half the monotonic clock's pace since the step: the wall clock gains on the ids by half of it.
            var kept = bridge.Lead - ((monotonic - bridge.Since) / 2);
            if (lead < kept && kept - lead <= LongestBridged)
            {
                return (monotonic + kept, false);
            }

            // Caught up (or set back again, too far): the wall clock from here. The lead first, so that a thread that finds
            // the bridge gone does not compare its lead with the one from before the step and take it for a new step.
            Volatile.Write(ref _lead, lead);
            Interlocked.CompareExchange(ref _bridge, null, bridge);
            return (wall, lead < kept);
        }

        var known = Volatile.Read(ref _lead);
        if (known != long.MinValue && lead < known - StepBack)
        {
            if (known - lead > LongestBridged)
            {
                Volatile.Write(ref _lead, lead);
                return (wall, true);
            }

            Interlocked.CompareExchange(ref _bridge, new Bridge(known, monotonic), null);
            return (monotonic + known, false);
        }

        if (lead != known)
        {
            Volatile.Write(ref _lead, lead);
        }

        return (wall, false);
    }

    // The position itself, or one past the last id handed out when that is not earlier (same 4,096th, or a thread whose
    // clocks were read before another's claim); a restart takes the position even if earlier.
    private long Claim(long position, bool restart)
    {
        var last = Volatile.Read(ref _last);
        while (true)
        {
            var next = position > last || restart ? position : last + 1;
            var seen = Interlocked.CompareExchange(ref _last, next, last);
            if (seen == last)
            {
                return next;
            }

            last = seen;
        }
    }

    private sealed record Bridge(long Lead, long Since);

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
