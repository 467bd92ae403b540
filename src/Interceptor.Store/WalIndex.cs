using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Interceptor.Store;

/// <summary>
/// Reads the WAL-index header in the -shm file (SQLite's file format, "WAL-index format": mxFrame at byte 16 of the
/// header, nBackfill at byte 96, both in the host's byte order) to tell whether the next commit only appends frames.
/// When every frame has been checkpointed (or the WAL is empty), the next commit restarts the WAL and SQLite fsyncs
/// its new header, even with synchronous=NORMAL: such a commit must not run where an fsync may not (BatchWriter.Here.cs).
/// </summary>
internal sealed class WalIndex : IDisposable
{
    private const int HeaderBytes = 100;
    private const int MaxFrameOffset = 16;
    private const int BackfillOffset = 96;
    private readonly SafeFileHandle? _shm;

    private WalIndex(SafeFileHandle? shm) => _shm = shm;

    /// <summary>Opens the -shm of <paramref name="database"/> for reading; without it every answer is "no".</summary>
    public static WalIndex Open(string database)
    {
        try
        {
            return new WalIndex(File.OpenHandle(database + "-shm", FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new WalIndex(null);
        }
    }

    /// <summary>
    /// True when the WAL holds frames not yet checkpointed: the next commit appends after them, with no header to
    /// write and no fsync. A read racing a checkpoint of another process can be stale; the only cost is that fsync.
    /// </summary>
    public bool NextCommitOnlyAppends() => FramesNotCheckpointed() > 0;

    /// <summary>Frames in the WAL not yet copied into the database; 0 when unknown (no -shm, a short read).</summary>
    public uint FramesNotCheckpointed() =>
        TryReadHeader(out var maxFrame, out var backfilled) && maxFrame > backfilled ? maxFrame - backfilled : 0;

    /// <summary>Frames in the WAL since it last restarted from its start (mxFrame); 0 when unknown.</summary>
    public uint Frames() => TryReadHeader(out var maxFrame, out _) ? maxFrame : 0;

    /// <summary>Frames of the WAL already copied into the database (nBackfill); 0 when unknown.</summary>
    public uint Backfilled() => TryReadHeader(out _, out var backfilled) ? backfilled : 0;

    /// <summary>Whether the -shm could be opened: without it every answer is 0 (nothing known).</summary>
    public bool IsAvailable => _shm is not null;

    /// <summary>mxFrame (frames since the WAL's last restart) and nBackfill (those copied) in one read; false when unknown.</summary>
    public bool TryReadHeader(out uint maxFrame, out uint backfilled)
    {
        maxFrame = backfilled = 0;
        if (_shm is null)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[HeaderBytes];
        try
        {
            if (RandomAccess.Read(_shm, header, 0) < HeaderBytes)
            {
                return false;
            }
        }
        catch (IOException)
        {
            return false;
        }

        maxFrame = MemoryMarshal.Read<uint>(header[MaxFrameOffset..]);
        backfilled = MemoryMarshal.Read<uint>(header[BackfillOffset..]);
        return true;
    }

    public void Dispose() => _shm?.Dispose();
}
