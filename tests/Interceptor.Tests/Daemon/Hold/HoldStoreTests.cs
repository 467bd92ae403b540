using System.Text;
using Interceptor.Daemon.Hold;
using Interceptor.Smtp.Data;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Hold;

[TestFixture]
public sealed class HoldStoreTests
{
    private static readonly DateTimeOffset Now = new(2030, 5, 1, 12, 0, 0, TimeSpan.Zero);
    private string _directory = "";
    private RecordingDisk _disk = null!;
    private HoldStore _store = null!;

    [SetUp]
    public void SetUp()
    {
        _directory = HoldSamples.TemporaryDirectory();
        _disk = new RecordingDisk();
        _store = new HoldStore(_directory, new ManualClock(Now), "web1.example", includeProcess: false, _disk);
    }

    [TearDown]
    public void TearDown()
    {
        _store.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Test]
    public async Task Holding_writes_the_message_then_the_record_then_the_directory_each_synced_before_it_returns()
    {
        var message = HoldSamples.Message();
        var id = await _store.HoldAsync(message, new BytesSpool(HoldSamples.Body), "scan", new StageFinding("score 9.1", 9.1, ["GTUBE", "BAYES_99"]), CancellationToken.None);

        Assert.That(id, Is.EqualTo(message.TransactionId));
        Assert.That(_disk.Operations, Is.EqualTo(new[]
        {
            $"write+fsync {id}.eml",
            $"write+fsync {id}.json.tmp",
            $"rename {id}.json.tmp {id}.json",
            "fsync directory",
        }));
    }

    [Test]
    public async Task A_message_that_would_leave_less_than_State_MinFreeBytes_free_is_not_held_and_nothing_is_written()
    {
        // Held messages are not counted by quotas: the free-space floor is what keeps a held user from filling the disk.
        using var floor = new HoldStore(_directory, new ManualClock(Now), "web1.example", includeProcess: false, _disk)
        {
            MinFreeBytes = 1000,
            FreeSpace = _ => 1000 + HoldSamples.Body.Length - 1,
        };

        var refused = Assert.ThrowsAsync<IOException>(async () =>
            await floor.HoldAsync(HoldSamples.Message(), new BytesSpool(HoldSamples.Body), "scan", new StageFinding("x"), CancellationToken.None));

        Assert.That(refused!.Message, Does.Contain("State.MinFreeBytes (1000)"));
        Assert.That(_disk.Operations, Is.Empty);

        using var justEnough = new HoldStore(_directory, new ManualClock(Now), "web1.example", includeProcess: false, _disk)
        {
            MinFreeBytes = 1000,
            FreeSpace = _ => 1000 + HoldSamples.Body.Length,
        };
        var id = await justEnough.HoldAsync(HoldSamples.Message(), new BytesSpool(HoldSamples.Body), "scan", new StageFinding("x"), CancellationToken.None);
        Assert.That(_disk.Operations, Does.Contain($"write+fsync {id}.eml"));
    }

    [Test]
    public async Task The_message_file_is_what_the_upstream_would_have_got_trace_header_once_then_the_client_bytes()
    {
        var message = HoldSamples.Message();
        var id = await _store.HoldAsync(message, new BytesSpool(HoldSamples.Body), "scan", new StageFinding("x"), CancellationToken.None);

        await using var file = _store.OpenMessage(id);
        var text = await new StreamReader(file, Encoding.ASCII).ReadToEndAsync();
        Assert.That(text, Is.EqualTo($"X-Interceptor-Origin: uid=1001 user=alice; host=web1.example; id={id}\r\n" + HoldSamples.Body));
        Assert.That(File.GetUnixFileMode(Path.Combine(_directory, id + ".eml")), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That(File.GetUnixFileMode(Path.Combine(_directory, id + ".json")), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
    }

    [Test]
    public async Task The_record_names_the_sender_recipients_destination_stage_finding_and_time()
    {
        var message = HoldSamples.Message();
        var id = await _store.HoldAsync(message, new BytesSpool(HoldSamples.Body), "scan", new StageFinding("score 9.1", 9.1, ["GTUBE"]), CancellationToken.None);

        var record = _store.Find(id)!;
        Assert.Multiple(() =>
        {
            Assert.That(record.Uid, Is.EqualTo(1001u));
            Assert.That(record.User, Is.EqualTo("alice"));
            Assert.That(record.Sender, Is.EqualTo("alice@example.com"));
            Assert.That(record.Recipients, Is.EqualTo(new[] { "bob@example.net", "carol@example.org" }));
            Assert.That(record.OriginalDestination, Is.EqualTo("192.0.2.25:25"));
            Assert.That(record.Stage, Is.EqualTo("scan"));
            Assert.That(record.Reason, Is.EqualTo("score 9.1"));
            Assert.That(record.Score, Is.EqualTo(9.1));
            Assert.That(record.Symbols, Is.EqualTo(new[] { "GTUBE" }));
            Assert.That(record.HeldAt, Is.EqualTo(Now));
            Assert.That(record.State, Is.EqualTo(HoldState.Held));
            Assert.That(record.SizeBytes, Is.EqualTo(new FileInfo(Path.Combine(_directory, id + ".eml")).Length));
        });
        Assert.That(File.ReadAllText(Path.Combine(_directory, id + ".json")), Does.Contain("\"state\": \"held\""));
    }

    [TestCase("0190aa5e3b1c7d2e8f9a0b1c2d3e4f50", true)]
    [TestCase("0190AA5E3B1C7D2E8F9A0B1C2D3E4F50", false)]
    [TestCase("0190aa5e3b1c7d2e8f9a0b1c2d3e4f5", false)]
    [TestCase("../../etc/passwd", false)]
    [TestCase("0190aa5e3b1c7d2e8f9a0b1c2d3e4f50.json", false)]
    [TestCase("", false)]
    public void Hold_ids_are_32_lower_case_hex_digits_and_nothing_else(string id, bool valid) =>
        Assert.That(HoldId.IsValid(id), Is.EqualTo(valid));

    [Test]
    public void A_transaction_id_that_is_not_a_hold_id_is_never_written()
    {
        Assert.ThrowsAsync<InvalidOperationException>(async () =>
            await _store.HoldAsync(HoldSamples.Message("../escape"), new BytesSpool("x\r\n"), "scan", new StageFinding("x"), CancellationToken.None));
        Assert.That(Directory.EnumerateFileSystemEntries(_directory), Is.Empty);
        Assert.That(_store.Find("../escape"), Is.Null);
    }

    [Test]
    public async Task An_update_replaces_the_record_through_a_synced_rename_and_a_delete_removes_both_files()
    {
        var id = await _store.HoldAsync(HoldSamples.Message(), new BytesSpool("x\r\n"), "scan", new StageFinding("x"), CancellationToken.None);
        _disk.Operations.Clear();

        var updated = await _store.UpdateAsync(id, r => r with { State = HoldState.Failed, LastResult = "550 no" }, CancellationToken.None);
        Assert.That(updated!.State, Is.EqualTo(HoldState.Failed));
        Assert.That(_store.Find(id)!.LastResult, Is.EqualTo("550 no"));
        Assert.That(_disk.Operations, Is.EqualTo(new[] { $"write+fsync {id}.json.tmp", $"rename {id}.json.tmp {id}.json", "fsync directory" }));

        Assert.That(await _store.DeleteAsync(id, CancellationToken.None), Is.True);
        Assert.That(Directory.EnumerateFileSystemEntries(_directory), Is.Empty);
        Assert.That(await _store.DeleteAsync(id, CancellationToken.None), Is.False);
        Assert.That(await _store.UpdateAsync(id, r => r, CancellationToken.None), Is.Null);
    }

    [Test]
    public async Task A_record_that_cannot_be_read_is_left_out_of_the_list_and_named()
    {
        var id = await _store.HoldAsync(HoldSamples.Message(), new BytesSpool("x\r\n"), "scan", new StageFinding("x"), CancellationToken.None);
        var broken = Guid.CreateVersion7().ToString("N");
        await File.WriteAllTextAsync(Path.Combine(_directory, broken + ".json"), "{ not json");

        Assert.That(_store.List().Select(r => r.Id), Is.EqualTo(new[] { id }));
        Assert.That(_store.Unreadable(), Is.EqualTo(new[] { broken }));
    }

    [Test]
    public void The_directory_must_be_0700()
    {
        File.SetUnixFileMode(_directory, HoldDirectory.Mode | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        var problem = Assert.Throws<HoldDirectoryException>(() => HoldDirectory.Prepare(_directory))!;
        Assert.That(problem.Message, Does.Contain("0750").And.Contain("must be 0700"));

        File.SetUnixFileMode(_directory, HoldDirectory.Mode);
        Assert.DoesNotThrow(() => HoldDirectory.Prepare(_directory));

        var created = Path.Combine(_directory, "new");
        HoldDirectory.Prepare(created);
        Assert.That(File.GetUnixFileMode(created), Is.EqualTo(HoldDirectory.Mode));
    }
}
