using System.Text.Json;
using Interceptor.Daemon.Control;
using Interceptor.Daemon.Hold;
using Interceptor.Smtp.Data;
using Interceptor.Tests.Daemon.Hold;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Control;

/// <summary>held, release and delete inside the daemon, on a hold store in a temporary directory.</summary>
[TestFixture]
public sealed class HoldAdminTests
{
    private string _directory = "";
    private AdminFixture _fixture = null!;
    private HoldStore _store = null!;
    private ScriptedDelivery _delivery = null!;
    private HoldReleaser _releaser = null!;
    private AdminService _service = null!;

    [SetUp]
    public void SetUp()
    {
        _directory = HoldSamples.TemporaryDirectory();
        _fixture = new AdminFixture();
        _store = new HoldStore(_directory, _fixture.Clock, "web1.example", includeProcess: false);
        _delivery = new ScriptedDelivery();
        _releaser = new HoldReleaser(_store, _delivery, new Interceptor.Core.Options.HoldOptions(), _fixture.Clock, NullLogger.Instance);
        _service = new AdminService(_fixture.Context with { Holds = _store, Releaser = _releaser }, NullLogger.Instance) { ResolveUser = AdminFixture.Resolve };
    }

    [TearDown]
    public async Task TearDown()
    {
        _releaser.Dispose();
        _store.Dispose();
        await _fixture.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private Task<ControlResponse> Ask(ControlRequest request) => _service.HandleAsync(request, new Interceptor.Linux.PeerCredentials(4242, 0, 0), CancellationToken.None);

    private static T Data<T>(ControlResponse response)
    {
        Assert.That(response.Ok, Is.True, () => $"{response.ErrorKind}: {response.Error}");
        return response.Data!.Value.Deserialize<T>(ControlJson.Options)!;
    }

    private async Task<string> HoldAsync(uint uid, string user) =>
        await _store.HoldAsync(HoldSamples.Message(uid: uid, user: user), new BytesSpool("x\r\n"), "suspended-user", new StageFinding($"user {user} is suspended: r"), CancellationToken.None);

    [Test]
    public async Task Held_lists_every_message_or_one_users_with_its_state_and_reason()
    {
        var alice = await HoldAsync(1001, "alice");
        // The list is in the order held, then by id; ids made in one millisecond are in no particular order.
        _fixture.Clock.Advance(TimeSpan.FromSeconds(1));
        var bob = await HoldAsync(1002, "bob");

        var all = Data<HeldData>(await Ask(new ControlRequest { Verb = "held" }));
        Assert.That(all.Messages.Select(m => m.Id), Is.EqualTo(new[] { alice, bob }));
        var only = Data<HeldData>(await Ask(new ControlRequest { Verb = "held", User = "bob" }));
        Assert.That(only.Messages.Select(m => m.Id), Is.EqualTo(new[] { bob }));
        Assert.That(only.Uid, Is.EqualTo(1002u));

        var text = HoldRendering.Held(all);
        Assert.That(text, Does.StartWith("2 held messages, oldest first:"));
        Assert.That(text, Does.Contain(alice).And.Contain("held").And.Contain("user alice is suspended: r"));
        Assert.That(all.Messages[0].State, Is.EqualTo(HoldState.Held));
    }

    [Test]
    public async Task Release_by_id_queues_one_message_and_release_by_user_all_of_theirs()
    {
        var first = await HoldAsync(1001, "alice");
        var second = await HoldAsync(1001, "alice");
        var bobs = await HoldAsync(1002, "bob");

        var one = Data<HoldChangeData>(await Ask(new ControlRequest { Verb = "release", Id = first }));
        Assert.That(one.Ids, Is.EqualTo(new[] { first }));
        Assert.That(_store.Find(first)!.State, Is.EqualTo(HoldState.Released));

        var again = await Ask(new ControlRequest { Verb = "release", Id = first });
        Assert.That(again.ErrorKind, Is.EqualTo(ControlErrors.BadRequest));
        Assert.That(again.Error, Does.Contain("released already"));

        var users = Data<HoldChangeData>(await Ask(new ControlRequest { Verb = "release", User = "alice" }));
        Assert.That(users.Ids, Is.EqualTo(new[] { second }));
        Assert.That(_store.Find(bobs)!.State, Is.EqualTo(HoldState.Held));
    }

    [Test]
    public async Task Delete_removes_the_message_and_its_record()
    {
        var id = await HoldAsync(1001, "alice");
        var deleted = Data<HoldChangeData>(await Ask(new ControlRequest { Verb = "delete", Id = id }));

        Assert.That(deleted.Ids, Is.EqualTo(new[] { id }));
        Assert.That(Directory.EnumerateFiles(_directory), Is.Empty);
        var missing = await Ask(new ControlRequest { Verb = "delete", Id = id });
        Assert.That(missing.ErrorKind, Is.EqualTo(ControlErrors.BadRequest));
        Assert.That(missing.Error, Does.Contain("no held message"));
    }

    [TestCase("release", null, null, "needs a held message's ID or --user")]
    [TestCase("delete", "0190aa5e3b1c7d2e8f9a0b1c2d3e4f50", "alice", "one of them")]
    [TestCase("release", "../x", null, "is not a held message's id")]
    [TestCase("held", "0190aa5e3b1c7d2e8f9a0b1c2d3e4f50", null, "takes no message id")]
    [TestCase("log", "0190aa5e3b1c7d2e8f9a0b1c2d3e4f50", null, "takes no message id")]
    public void Bad_hold_requests_are_refused_naming_the_problem(string verb, string? id, string? user, string problem)
    {
        var e = Assert.Throws<ControlException>(() => new ControlRequest { Verb = verb, Id = id, User = user }.Validate())!;
        Assert.That(e.Kind, Is.EqualTo(ControlErrors.BadRequest));
        Assert.That(e.Message, Does.Contain(problem));
    }

    [Test]
    public void A_request_line_with_an_id_parses_and_one_without_serializes_as_before()
    {
        var parsed = ControlRequest.Parse("{\"verb\":\"release\",\"id\":\"0190aa5e3b1c7d2e8f9a0b1c2d3e4f50\"}"u8);
        Assert.That(parsed.Id, Is.EqualTo("0190aa5e3b1c7d2e8f9a0b1c2d3e4f50"));
        Assert.That(JsonSerializer.Serialize(new ControlRequest { Verb = "status" }, ControlJson.Strict), Is.EqualTo("{\"verb\":\"status\"}"));
    }
}
