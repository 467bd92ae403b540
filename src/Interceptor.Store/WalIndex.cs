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
    public uint FramesNotCheckpointed()
    {
        if (_shm is null)
        {
            return 0;
        }

        Span<byte> header = stackalloc byte[HeaderBytes];
        try
        {
            if (RandomAccess.Read(_shm, header, 0) < HeaderBytes)
            {
                return 0;
            }
        }
        catch (IOException)
        {
            return 0;
        }

        var maxFrame = MemoryMarshal.Read<uint>(header[MaxFrameOffset..]);
        var backfilled = MemoryMarshal.Read<uint>(header[BackfillOffset..]);
        return maxFrame > backfilled ? maxFrame - backfilled : 0;
    }

    public void Dispose() => _shm?.Dispose();
}
