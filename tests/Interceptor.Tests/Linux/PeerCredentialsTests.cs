using System.Net.Sockets;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

[TestFixture]
public sealed class PeerCredentialsTests
{
    private string _directory = "";

    [SetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("peercred-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    [Test]
    public async Task Both_ends_of_a_real_unix_socket_see_this_process()
    {
        var path = Path.Combine(_directory, "s.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await client.ConnectAsync(new UnixDomainSocketEndPoint(path));
        using var accepted = await listener.AcceptAsync();

        var server = PeerCredentials.Of(accepted);
        var other = PeerCredentials.Of(client);

        var expected = new PeerCredentials(Environment.ProcessId, Tmds.Linux.LibC.geteuid(), Tmds.Linux.LibC.getegid());
        Assert.Multiple(() =>
        {
            Assert.That(server, Is.EqualTo(expected));
            Assert.That(other, Is.EqualTo(expected));
        });
    }

    [Test]
    public void Groups_come_from_the_group_database()
    {
        Assert.Multiple(() =>
        {
            Assert.That(UnixGroups.GidOf("root"), Is.EqualTo(0u));
            Assert.That(UnixGroups.GidOf("no-such-group-xyz"), Is.Null);
            Assert.That(UnixGroups.GroupsOf("root", 0), Does.Contain(0u));

            // The primary gid is always in the list, even one the database does not know.
            Assert.That(UnixGroups.GroupsOf("root", 4_000_000_123), Does.Contain(4_000_000_123u));
        });
    }

    [Test]
    public void Path_identity_tells_a_socket_from_a_file_and_from_nothing()
    {
        var socketPath = Path.Combine(_directory, "s.sock");
        var filePath = Path.Combine(_directory, "f");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(socketPath));
        File.WriteAllText(filePath, "x");
        File.CreateSymbolicLink(Path.Combine(_directory, "link"), socketPath);

        var socketIdentity = PathIdentity.Of(socketPath);
        Assert.Multiple(() =>
        {
            Assert.That(socketIdentity?.IsSocket, Is.True);
            Assert.That(PathIdentity.Of(filePath)?.IsSocket, Is.False);
            Assert.That(PathIdentity.Of(Path.Combine(_directory, "link"))?.IsSocket, Is.False, "a symlink is not followed");
            Assert.That(PathIdentity.Of(Path.Combine(_directory, "missing")), Is.Null);
            Assert.That(PathIdentity.Of(Path.Combine(filePath, "below-a-file")), Is.Null);
            Assert.That(PathIdentity.Of(socketPath), Is.EqualTo(socketIdentity));
            Assert.That(PathIdentity.Of(filePath)?.Inode, Is.Not.EqualTo(socketIdentity?.Inode));
        });
    }

    [Test]
    public void SetGroup_changes_the_group_and_keeps_the_owner()
    {
        var path = Path.Combine(_directory, "f");
        File.WriteAllText(path, "x");
        var gid = Tmds.Linux.LibC.getegid();

        UnixGroups.SetGroup(path, gid);

        Assert.That(() => UnixGroups.SetGroup(Path.Combine(_directory, "missing"), gid), Throws.TypeOf<LinuxInteropException>().With.Message.Contains("No such file"));
    }
}
