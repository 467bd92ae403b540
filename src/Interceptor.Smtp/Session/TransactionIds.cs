using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Interceptor.Smtp.Session;

/// <summary>
/// Transaction ids: UUIDv7 (RFC 9562: 48 bits of Unix milliseconds, then 74 random bits) as 32 lower-case hex digits,
/// the form <c>Guid.CreateVersion7().ToString("N")</c> gives. Made here because that call reads /dev/urandom once per
/// id on this runtime: a system call per message on the socket thread (issue 19). The random bits come from the
/// system's CSPRNG all the same, drawn 4 KiB at a time into a buffer of the calling thread's own.
/// </summary>
internal static class TransactionIds
{
    private const int RandomBytesPerId = 10; // 12 bits of rand_a and 62 of rand_b, rounded up to whole bytes
    private const int BufferBytes = 4096;

    // Per thread: no lock on the message path, and no byte is ever handed to two ids.
    [ThreadStatic]
    private static byte[]? t_random;

    [ThreadStatic]
    private static int t_next;

    public static string Next() => Next(DateTimeOffset.UtcNow);

    internal static string Next(DateTimeOffset now)
    {
        Span<byte> id = stackalloc byte[16];
        Span<byte> time = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(time, now.ToUnixTimeMilliseconds());
        time[2..].CopyTo(id); // the low 48 bits
        TakeRandom(id[6..]);
        id[6] = (byte)(0x70 | (id[6] & 0x0F)); // version 7
        id[8] = (byte)(0x80 | (id[8] & 0x3F)); // variant 10 (RFC 9562)
        return Convert.ToHexStringLower(id);
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
