using System.Text.Json;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Session;

namespace Interceptor.Daemon.Hold;

/// <summary>
/// Held messages on disk, in Hold.Directory: <c>ID.eml</c> (the message as the upstream would have got it: the trace
/// header, then the client's bytes, dot-stuffed, without the end marker) and <c>ID.json</c> (<see cref="HeldMessage"/>).
/// Holding writes and fsyncs the message, then the record (written aside and renamed), then the directory, and only then
/// returns: the client's 250 makes us responsible for the message. Records change the same way, so a crash leaves the
/// old record or the new one, never half of one.
/// </summary>
public sealed class HoldStore(string directory, TimeProvider time, string hostName, bool includeProcess, IHoldDisk? disk = null) : IMessageHolding, IDisposable
{
    private const string MessageSuffix = ".eml";
    private const string RecordSuffix = ".json";
    private const string TemporarySuffix = ".tmp";

    private readonly IHoldDisk _disk = disk ?? HoldDisk.Instance;

    // One change at a time: the delivery loop and the admin verbs both change records.
    private readonly SemaphoreSlim _changing = new(1, 1);

    public string Directory => directory;

    /// <summary>
    /// <c>State.MinFreeBytes</c>: a message is not held when keeping it would leave less free on the hold directory's
    /// filesystem. Held messages count toward their user's quotas as they are held, but many users, or big quotas, could
    /// still fill the disk; the client gets 451 instead and keeps the message (a failure of ours, counted against nobody).
    /// 0: no floor.
    /// </summary>
    public long MinFreeBytes { get; init; }

    /// <summary>Free bytes on the filesystem of a directory (a fake in tests).</summary>
    public Func<string, long> FreeSpace { get; init; } = path => new DriveInfo(path).AvailableFreeSpace;

    public async ValueTask<string> HoldAsync(MessageContext message, IMessageSpool spool, string stage, StageFinding finding, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(spool);
        ArgumentNullException.ThrowIfNull(finding);
        var id = message.TransactionId;
        if (!HoldId.IsValid(id))
        {
            throw new InvalidOperationException($"transaction id \"{id}\" is not a hold id");
        }

        if (MinFreeBytes > 0 && FreeSpace(directory) - spool.Length < MinFreeBytes)
        {
            throw new IOException($"holding {spool.Length} bytes would leave less than State.MinFreeBytes ({MinFreeBytes}) free under {directory}");
        }

        try
        {
            return await KeepAsync(message, spool, stage, finding, id, token);
        }
        catch (UnauthorizedAccessException e)
        {
            // The pipeline answers an IOException with 451 (the client keeps the message); a permission problem is one.
            throw new IOException(e.Message, e);
        }
    }

    private async Task<string> KeepAsync(MessageContext message, IMessageSpool spool, string stage, StageFinding finding, string id, CancellationToken token)
    {
        var header = TraceHeader.Render(message.Origin, hostName, id, includeProcess);
        await _disk.WriteFileAsync(MessagePath(id), async (file, cancel) =>
        {
            await file.WriteAsync(header, cancel);
            await using var content = spool.OpenRead();
            await content.CopyToAsync(file, cancel);
        }, token);

        var origin = message.Origin;
        var record = new HeldMessage(
            id, origin.Uid, origin.User, message.Sender, [.. message.Recipients], origin.OriginalDestination.ToString(),
            "original-destination", stage, finding.Summary, finding.Score, finding.Symbols ?? [], time.GetUtcNow(), header.Length + spool.Length, HoldState.Held);
        await _changing.WaitAsync(token);
        try
        {
            await WriteRecordAsync(record, token);
        }
        finally
        {
            _changing.Release();
        }

        return id;
    }

    /// <summary>Every readable record, oldest first; a record that cannot be read is skipped (and named by <see cref="Unreadable"/>).</summary>
    public IReadOnlyList<HeldMessage> List()
    {
        var records = new List<HeldMessage>();
        foreach (var path in System.IO.Directory.EnumerateFiles(directory, "*" + RecordSuffix))
        {
            if (Read(Path.GetFileNameWithoutExtension(path)) is { } record)
            {
                records.Add(record);
            }
        }

        return [.. records.OrderBy(r => r.HeldAt).ThenBy(r => r.Id, StringComparer.Ordinal)];
    }

    /// <summary>Ids of record files that could not be parsed: kept for the admin, never delivered.</summary>
    public IReadOnlyList<string> Unreadable() =>
        [.. System.IO.Directory.EnumerateFiles(directory, "*" + RecordSuffix).Select(Path.GetFileNameWithoutExtension).OfType<string>().Where(id => Read(id) is null)];

    public HeldMessage? Find(string id) => HoldId.IsValid(id) ? Read(id) : null;

    /// <summary>Opens the held message (trace header first) for delivery.</summary>
    public Stream OpenMessage(string id) =>
        new FileStream(MessagePath(Checked(id)), FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024, FileOptions.Asynchronous | FileOptions.SequentialScan);

    /// <summary>
    /// Changes a record when <paramref name="change"/> gives a new one for the current (null: no change); returns what is
    /// on disk afterwards, or null when there is no such record (deleted meanwhile).
    /// </summary>
    public async Task<HeldMessage?> UpdateAsync(string id, Func<HeldMessage, HeldMessage?> change, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(change);
        await _changing.WaitAsync(token);
        try
        {
            if (Find(id) is not { } current)
            {
                return null;
            }

            if (change(current) is not { } changed)
            {
                return current;
            }

            await WriteRecordAsync(changed, token);
            return changed;
        }
        finally
        {
            _changing.Release();
        }
    }

    /// <summary>Removes the message file only (delivered: the record stays until retention, for `held`).</summary>
    public void DropMessage(string id)
    {
        _disk.Delete(MessagePath(Checked(id)));
        _disk.SyncDirectory(directory);
    }

    /// <summary>Deletes the record, then the message; false when there was no record.</summary>
    public async Task<bool> DeleteAsync(string id, CancellationToken token)
    {
        await _changing.WaitAsync(token);
        try
        {
            var path = RecordPath(Checked(id));
            if (!File.Exists(path))
            {
                return false;
            }

            // The record first: once it is gone nothing delivers the message; a crash before the next line leaves a stray
            // message file, which retention removes.
            _disk.Delete(path);
            _disk.Delete(MessagePath(id));
            _disk.SyncDirectory(directory);
            return true;
        }
        finally
        {
            _changing.Release();
        }
    }

    /// <summary>Message files without a record (a crash while holding or deleting) older than <paramref name="before"/>; deleted.</summary>
    public IReadOnlyList<string> DeleteStrays(DateTimeOffset before)
    {
        var deleted = new List<string>();
        foreach (var path in System.IO.Directory.EnumerateFiles(directory).Where(p => p.EndsWith(MessageSuffix, StringComparison.Ordinal) || p.EndsWith(TemporarySuffix, StringComparison.Ordinal)))
        {
            var id = Path.GetFileName(path).Split('.')[0];
            if ((path.EndsWith(TemporarySuffix, StringComparison.Ordinal) || !File.Exists(RecordPath(id))) && File.GetLastWriteTimeUtc(path) < before.UtcDateTime)
            {
                _disk.Delete(path);
                deleted.Add(Path.GetFileName(path));
            }
        }

        if (deleted.Count > 0)
        {
            _disk.SyncDirectory(directory);
        }

        return deleted;
    }

    private async Task WriteRecordAsync(HeldMessage record, CancellationToken token)
    {
        var path = RecordPath(record.Id);
        var temporary = path + TemporarySuffix;
        await _disk.WriteFileAsync(temporary, (file, cancel) => JsonSerializer.SerializeAsync(file, record, HoldJson.Options, cancel), token);
        _disk.Move(temporary, path);
        _disk.SyncDirectory(directory);
    }

    private HeldMessage? Read(string id)
    {
        try
        {
            var record = JsonSerializer.Deserialize<HeldMessage>(File.ReadAllBytes(RecordPath(id)), HoldJson.Options);
            return record is not null && record.Id == id && record.Recipients is not null ? record : null;
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string Checked(string id) => HoldId.IsValid(id) ? id : throw new ArgumentException($"\"{id}\" is not a hold id", nameof(id));

    private string MessagePath(string id) => Path.Combine(directory, id + MessageSuffix);

    private string RecordPath(string id) => Path.Combine(directory, id + RecordSuffix);

    public void Dispose() => _changing.Dispose();
}
