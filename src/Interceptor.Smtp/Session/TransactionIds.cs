using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Interceptor.Smtp.Session;

/// <summary>
/// Transaction ids: UUIDv7 (RFC 9562: 48 bits of Unix milliseconds, then 74 bits of counter and random) as 32 lower-case
/// hex digits, the form <c>Guid.CreateVersion7().ToString("N")</c> gives. Made here because that call reads /dev/urandom
/// once per id on this runtime: a system call per message on the socket thread (issue 19). The random bits come from
/// the system's CSPRNG all the same, drawn 4 KiB at a time into a buffer of the calling thread's own.
/// </summary>
/// <remarks>
/// Ids are handed out in order, on every thread together: the 42 bits after the milliseconds (rand_a and the top of
/// rand_b) are a counter within the millisecond (RFC 9562 §6.2, method 1, the longest counter it allows), so ids of one
/// millisecond sort in the order they were made (the hold list breaks ties of its time by id). The counter starts at a
/// random value below its guard bit and steps by a random amount (method 2's random increment), both from the CSPRNG:
/// two ids a customer sees in its trace headers then do not count the host's other mail made between them, as steps
/// of one would. Ids beyond a millisecond's counter carry into the next; a clock set back continues from the last id.
/// The last 32 bits are random.
/// </remarks>
internal sealed class TransactionIds
{
    private const int CounterBits = 42;
    private const long CounterLimit = 1L << CounterBits;
    private const int RandomBytesPerId = 16; // 8 for the counter's start or step, 4 for the tail, rounded up
    private const int BufferBytes = 4096;

    /// <summary>The daemon's ids.</summary>
    public static readonly TransactionIds Shared = new();

    // Per thread: no lock on the message path for the random bytes, and no byte is ever handed to two ids.
    [ThreadStatic]
    private static byte[]? t_random;

    [ThreadStatic]
    private static int t_next;

    private readonly long _stepLimit;
    private readonly Lock _gate = new();
    private long _milliseconds = long.MinValue;
    private long _counter;

    /// <param name="stepBits">
    /// Steps are drawn below 2^<paramref name="stepBits"/>: 2^20 leaves room for two million ids a millisecond past the
    /// guard bit, and hides how many were made between two of them. Larger only for tests of the carry.
    /// </param>
    internal TransactionIds(int stepBits = 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(stepBits, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(stepBits, CounterBits - 2); // a step within the room above the guard bit
        _stepLimit = 1L << stepBits;
    }

    public static string Next() => Shared.NextAt(DateTimeOffset.UtcNow);

    /// <summary>An id of <paramref name="now"/>'s millisecond, or later if an id of it or a later one was made already.</summary>
    public string NextAt(DateTimeOffset now)
    {
        Span<byte> random = stackalloc byte[RandomBytesPerId];
        TakeRandom(random);
        var drawn = BinaryPrimitives.ReadInt64LittleEndian(random) & long.MaxValue;
        var (milliseconds, counter) = Claim(now.ToUnixTimeMilliseconds(), drawn);

        Span<byte> id = stackalloc byte[16];
        Span<byte> time = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(time, milliseconds);
        time[2..].CopyTo(id); // the low 48 bits
        id[6] = (byte)(0x70 | (int)(counter >> 38)); // version 7, then the counter's top 4 bits
        id[7] = (byte)(counter >> 30);
        id[8] = (byte)(0x80 | (int)((counter >> 24) & 0x3F)); // variant 10 (RFC 9562), then 6 more bits
        id[9] = (byte)(counter >> 16);
        id[10] = (byte)(counter >> 8);
        id[11] = (byte)counter;
        random[8..12].CopyTo(id[12..]);
        random.Clear();
        return Convert.ToHexStringLower(id);
    }

    // The next (milliseconds, counter): a random step above the last one handed out, or a random start below the guard bit
    // in a millisecond later than the last id's, or when the last millisecond's counter is spent.
    private (long Milliseconds, long Counter) Claim(long milliseconds, long drawn)
    {
        var start = drawn & ((CounterLimit >> 1) - 1);
        lock (_gate)
        {
            if (milliseconds > _milliseconds)
            {
                (_milliseconds, _counter) = (milliseconds, start);
            }
            else
            {
                _counter += 1 + (drawn & (_stepLimit - 1));
                if (_counter >= CounterLimit)
                {
                    (_milliseconds, _counter) = (_milliseconds + 1, start);
                }
            }

            return (_milliseconds, _counter);
        }
    }

    private static void TakeRandom(Span<byte> into)
    {
        var buffer = t_random ??= new byte[BufferBytes];
        if (t_next == 0 || t_next + into.Length > BufferBytes)
        {
            RandomNumberGenerator.Fill(buffer);
            t_next = 0;
        }

        buffer.AsSpan(t_next, into.Length).CopyTo(into);

        // Spent bytes are cleared, so nothing of a past id stays in the buffer.
        buffer.AsSpan(t_next, into.Length).Clear();
        t_next += into.Length;
    }
}
