using System.Security.Cryptography;

namespace Interceptor.Smtp.Identity;

/// <summary>
/// DKIM's "relaxed" canonicalisation (RFC 6376 3.4.2 and 3.4.4), written here rather than taken from MimeKit because
/// MimeKit signs the message it serialises from its own parse, while we must sign the spool's exact bytes as they are
/// replayed, reading the body once as a stream with one line in memory.
/// </summary>
public static class DkimCanonicalization
{
    private static bool IsWsp(byte b) => b is (byte)' ' or (byte)'\t';

    /// <summary>
    /// A header field, relaxed: name in lower case, folding removed, runs of WSP as one space, no WSP around the colon or
    /// at the end; then CRLF when <paramref name="withCrlf"/>.
    /// </summary>
    public static byte[] Header(ReadOnlySpan<byte> raw, bool withCrlf = true)
    {
        var colon = raw.IndexOf((byte)':');
        var output = new List<byte>(raw.Length + 2);
        foreach (var b in raw[..colon].TrimEnd(" \t"u8))
        {
            output.Add(b is >= (byte)'A' and <= (byte)'Z' ? (byte)(b + 32) : b);
        }

        output.Add((byte)':');
        var pendingSpace = false;
        var valueStarted = false;
        foreach (var b in raw[(colon + 1)..])
        {
            if (b is (byte)'\r' or (byte)'\n')
            {
                continue;
            }

            if (IsWsp(b))
            {
                pendingSpace = true;
                continue;
            }

            // WSP right after the colon is dropped; elsewhere a run becomes one space (and trailing runs vanish).
            if (pendingSpace && valueStarted)
            {
                output.Add((byte)' ');
            }

            pendingSpace = false;
            valueStarted = true;
            output.Add(b);
        }

        if (withCrlf)
        {
            output.Add((byte)'\r');
            output.Add((byte)'\n');
        }

        return [.. output];
    }
}

/// <summary>
/// The relaxed body hash, fed line by line: WSP runs become one space, trailing WSP goes, and empty lines at the end are
/// ignored (counted, and written only when a non-empty line follows). Output is batched into a small buffer before
/// hashing, so a 300 MB body costs the buffer and the hash state.
/// </summary>
public sealed class RelaxedBodyHasher : IDisposable
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly byte[] _batch = new byte[64 * 1024];
    private int _batched;
    private long _emptyLines;

    /// <summary>One body line, with or without its line ending (CRLF or LF).</summary>
    public void AddLine(ReadOnlySpan<byte> line)
    {
        if (line.EndsWith("\n"u8))
        {
            line = line[..^1];
        }

        if (line.EndsWith("\r"u8))
        {
            line = line[..^1];
        }

        line = line.TrimEnd(" \t"u8);
        if (line.IsEmpty)
        {
            _emptyLines++;
            return;
        }

        for (; _emptyLines > 0; _emptyLines--)
        {
            Put("\r\n"u8);
        }

        // Vectorised search for the next WSP run: most lines have few.
        int space;
        while ((space = line.IndexOfAny((byte)' ', (byte)'\t')) >= 0)
        {
            Put(line[..space]);
            Put(" "u8);
            var rest = line[space..].IndexOfAnyExcept((byte)' ', (byte)'\t');
            line = line[(space + rest)..];
        }

        Put(line);
        Put("\r\n"u8);
    }

    /// <summary>The SHA-256 of the canonical body (an empty body hashes nothing, RFC 6376 errata 3.4.4).</summary>
    public byte[] Finish()
    {
        _hash.AppendData(_batch, 0, _batched);
        _batched = 0;
        return _hash.GetHashAndReset();
    }

    private void Put(ReadOnlySpan<byte> bytes)
    {
        if (_batched + bytes.Length > _batch.Length)
        {
            _hash.AppendData(_batch, 0, _batched);
            _batched = 0;
            if (bytes.Length > _batch.Length)
            {
                _hash.AppendData(bytes);
                return;
            }
        }

        bytes.CopyTo(_batch.AsSpan(_batched));
        _batched += bytes.Length;
    }

    public void Dispose() => _hash.Dispose();
}

/// <summary>Reads one tag of a DKIM tag list ("v=1; d=example.com; …").</summary>
public static class DkimTags
{
    public static string? Find(string tagList, string tag)
    {
        foreach (var part in tagList.Split(';'))
        {
            var equals = part.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0 && string.Equals(part[..equals].Trim(), tag, StringComparison.Ordinal))
            {
                return string.Concat(part[(equals + 1)..].Where(c => !char.IsWhiteSpace(c)));
            }
        }

        return null;
    }
}
