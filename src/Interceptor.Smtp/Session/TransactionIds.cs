using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Interceptor.Smtp.Session;

/// <summary>
/// Transaction ids: UUIDv7 (RFC 9562: 48 bits of Unix milliseconds, 12 of rand_a, 62 random bits) as 32 lower-case hex
/// digits, the form <c>Guid.CreateVersion7().ToString("N")</c> gives. Made here because that call reads /dev/urandom
/// once per id on this runtime: a system call per message on the socket thread (issue 19). The random bits come from
/// the system's CSPRNG all the same, drawn 4 KiB at a time into a buffer of the calling thread's own.
/// </summary>
/// <remarks>
/// Ids are handed out in order, on every thread together: rand_a is a counter within the millisecond (RFC 9562 §6.2,
/// method 1), so ids of one millisecond sort in the order they were made (the hold list breaks ties of its time by id),
/// where random bits there ordered them at random. Each millisecond's counter starts at a random value below 2,048 (the
/// RFC's guard bit), so that an id a customer sees in its trace header does not count the host's other mail. Ids beyond
/// a millisecond's counter carry into the next; a clock set back continues from the last id made.
/// </remarks>
internal sealed class TransactionIds
{
    private const int SequenceBits = 12;
    private const int RandomBytesPerId = 8; // rand_b's 62 bits, rounded up to whole bytes
    private const int BufferBytes = 4096;

    /// <summary>The daemon's ids.</summary>
    public static readonly TransactionIds Shared = new();

    // Per thread: no lock on the message path, and no byte is ever handed to two ids.
    [ThreadStatic]
    private static byte[]? t_random;

    [ThreadStatic]
    private static int t_next;

    // The last id's milliseconds and counter, as (ms << 12) | counter.
    private long _last = long.MinValue;

    public static string Next() => Shared.NextAt(DateTimeOffset.UtcNow);

    /// <summary>An id of <paramref name="now"/>'s millisecond, or later if an id of it or a later one was made already.</summary>
    public string NextAt(DateTimeOffset now)
    {
        var ordered = Claim(now.ToUnixTimeMilliseconds());
        Span<byte> id = stackalloc byte[16];
        Span<byte> time = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(time, ordered >> SequenceBits);
        time[2..].CopyTo(id); // the low 48 bits
        var sequence = (int)(ordered & ((1 << SequenceBits) - 1));
        id[6] = (byte)(0x70 | (sequence >> 8)); // version 7, then the counter's high 4 bits
        id[7] = (byte)sequence;
        TakeRandom(id[8..]);
        id[8] = (byte)(0x80 | (id[8] & 0x3F)); // variant 10 (RFC 9562)
        return Convert.ToHexStringLower(id);
    }

    // The next (ms << 12) | counter: one above the last one handed out, or a random start in a millisecond later than the
    // last id's (only the first id of a millisecond starts at random; the rest count on from it).
    private long Claim(long milliseconds)
    {
        var last = Volatile.Read(ref _last);
        while (true)
        {
            // The random start is drawn only for a new millisecond: most ids under load count on from the last.
            var next = milliseconds > last >> SequenceBits
                ? (milliseconds << SequenceBits) | (long)Random.Shared.Next(1 << (SequenceBits - 1))
                : last + 1;
            var seen = Interlocked.CompareExchange(ref _last, next, last);
            if (seen == last)
            {
                return next;
            }

            last = seen;
        }
    }

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
