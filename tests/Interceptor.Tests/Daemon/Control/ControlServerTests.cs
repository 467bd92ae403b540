using System.Net.Sockets;
using System.Text;
using Interceptor.Core.Options;
using Interceptor.Daemon.Control;
using Interceptor.Linux;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Control;

/// <summary>The control socket on a real Unix socket in a temporary directory; no root needed.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class ControlServerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private string _directory = "";
    private string _socketPath = "";

    [SetUp]
    public void CreateDirectory()
    {
        _directory = Directory.CreateTempSubdirectory("control-").FullName;

        // A directory the server must create itself, as it does for /run/smtp-interceptor.
        _socketPath = Path.Combine(_directory, "run", "control.sock");
    }

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    private AdminFixture Fixture() => new(new InterceptorOptions { Control = new ControlOptions { SocketPath = _socketPath } });

    private static ControlServer Server(AdminFixture f, Func<PeerCredentials, bool>? admit = null, TimeSpan? readTimeout = null) =>
        new(f.Context, NullLogger.Instance)
        {
            Authorization = new PeerAuthorization("mailadm", 4242, _ => []),
            Service = f.Service,
            AdmitOverride = admit,
            ReadTimeout = readTimeout ?? ControlServer.RequestTimeout,
        };

    [Test]
    public async Task Creates_a_private_directory_and_a_0660_socket_answers_and_removes_it_on_dispose()
    {
        await using var f = Fixture();
        var server = Server(f);
        server.Start();

        var response = await ControlClient.SendAsync(_socketPath, "mailadm", new ControlRequest { Verb = "limits" }, Timeout);

        Assert.Multiple(() =>
        {
            Assert.That(response.Ok, Is.True, response.Error);
            Assert.That(response.Verb, Is.EqualTo("limits"));
            Assert.That(File.GetUnixFileMode(Path.GetDirectoryName(_socketPath)!), Is.EqualTo(ControlSocketFile.DirectoryMode));
            Assert.That(File.GetUnixFileMode(_socketPath), Is.EqualTo(ControlSocketFile.SocketMode));
            Assert.That(PathIdentity.Of(_socketPath)?.IsSocket, Is.True);
        });

        await server.DisposeAsync();
        Assert.That(File.Exists(_socketPath), Is.False);
    }

    [Test]
    public async Task A_peer_that_is_not_admitted_gets_a_json_refusal_naming_the_group()
    {
        await using var f = Fixture();
        await using var server = Server(f, admit: _ => false);
        server.Start();

        var response = await ControlClient.SendAsync(_socketPath, "mailadm", new ControlRequest { Verb = "block", User = "alice", Reason = "x" }, Timeout);

        Assert.Multiple(() =>
        {
            Assert.That(response.Ok, Is.False);
            Assert.That(response.ErrorKind, Is.EqualTo(ControlErrors.PermissionDenied));
            Assert.That(response.Error, Is.EqualTo("permission denied: only root and members of group mailadm may use the control socket"));
            Assert.That(f.Suspensions.IsSuspended(1001, out _), Is.False);
        });
    }

    [Test]
    public async Task The_admission_check_sees_the_kernels_credentials_of_the_peer()
    {
        await using var f = Fixture();
        var seen = new List<PeerCredentials>();
        await using var server = Server(f, admit: peer =>
        {
            lock (seen)
            {
                seen.Add(peer);
            }

            return true;
        });
        server.Start();

        await ControlClient.SendAsync(_socketPath, "", new ControlRequest { Verb = "status" }, Timeout);

        Assert.That(seen.Single().Pid, Is.EqualTo(Environment.ProcessId));
    }

    [TestCase("garbage\n", "not a valid JSON request object")]
    [TestCase("{\"verb\":\"reboot\"}\n", "unknown verb")]
    [TestCase("{\"verb\":\"limits\"}", null)]
    public async Task Raw_request_lines_are_answered_with_one_json_line(string raw, string? error)
    {
        await using var f = Fixture();
        await using var server = Server(f);
        server.Start();

        var answer = await RawAsync(Encoding.UTF8.GetBytes(raw), halfClose: true);

        Assert.That(answer, Does.EndWith("}\n"));
        Assert.That(answer.Count(c => c == '\n'), Is.EqualTo(1));
        if (error is null)
        {
            Assert.That(answer, Does.StartWith("{\"ok\":true,\"verb\":\"limits\""));
        }
        else
        {
            Assert.That(answer, Does.StartWith("{\"ok\":false").And.Contains(error).And.Contains("\"errorKind\":\"badRequest\""));
        }
    }

    [Test]
    public async Task An_oversized_request_is_refused_without_reading_it_all()
    {
        await using var f = Fixture();
        await using var server = Server(f);
        server.Start();

        // One byte over: the server stops reading there (whatever follows would only be discarded).
        var answer = await RawAsync(new byte[ControlRequest.MaxBytes + 1], halfClose: false);

        Assert.That(answer, Does.Contain($"the request line is longer than {ControlRequest.MaxBytes} bytes"));
    }

    [Test]
    public async Task A_silent_peer_is_answered_at_the_read_timeout_and_the_server_goes_on()
    {
        await using var f = Fixture();
        await using var server = Server(f, readTimeout: TimeSpan.FromMilliseconds(300));
        server.Start();

        var answer = await RawAsync([], halfClose: false);
        var next = await ControlClient.SendAsync(_socketPath, "", new ControlRequest { Verb = "limits" }, Timeout);

        Assert.That(answer, Does.Contain("no complete request line within 0.3 s"));
        Assert.That(next.Ok, Is.True);
    }

    [Test]
    public async Task A_peer_that_closes_at_once_gets_nothing_and_the_server_goes_on()
    {
        await using var f = Fixture();
        await using var server = Server(f);
        server.Start();

        var answer = await RawAsync([], halfClose: true);
        var next = await ControlClient.SendAsync(_socketPath, "", new ControlRequest { Verb = "limits" }, Timeout);

        Assert.That(answer, Is.Empty);
        Assert.That(next.Ok, Is.True);
    }

    [Test]
    public async Task A_stale_socket_is_replaced()
    {
        LeaveStaleSocket(_socketPath);

        await using var f = Fixture();
        await using var server = Server(f);
        server.Start();

        var response = await ControlClient.SendAsync(_socketPath, "", new ControlRequest { Verb = "limits" }, Timeout);
        Assert.That(response.Ok, Is.True);
    }

    [Test]
    public async Task A_file_that_is_not_a_socket_is_never_deleted()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_socketPath)!);
        File.WriteAllText(_socketPath, "precious");
        await using var f = Fixture();
        var server = Server(f);

        Assert.That(server.Start, Throws.TypeOf<ControlSocketException>().With.Message.Contains("exists and is not a socket"));
        Assert.That(File.ReadAllText(_socketPath), Is.EqualTo("precious"));
    }

    [Test]
    public async Task A_second_server_on_the_same_path_refuses_to_start_and_leaves_the_first_working()
    {
        await using var f = Fixture();
        await using var first = Server(f);
        first.Start();
        var second = Server(f);

        Assert.That(second.Start, Throws.TypeOf<ControlSocketException>().With.Message.Contains("another process is already listening"));
        await second.DisposeAsync();
        var response = await ControlClient.SendAsync(_socketPath, "", new ControlRequest { Verb = "limits" }, Timeout);
        Assert.That(response.Ok, Is.True);
    }

    [Test]
    public void The_client_says_when_the_daemon_is_not_running()
    {
        Assert.That(
            () => ControlClient.SendAsync(_socketPath, "", new ControlRequest { Verb = "status" }, Timeout),
            Throws.TypeOf<ControlClientException>().With.Message.EqualTo(
                $"the daemon is not running: there is no control socket {_socketPath} (start it, e.g. `systemctl start smtp-interceptor`, or check Control.SocketPath)"));

        LeaveStaleSocket(_socketPath);

        Assert.That(
            () => ControlClient.SendAsync(_socketPath, "", new ControlRequest { Verb = "status" }, Timeout),
            Throws.TypeOf<ControlClientException>().With.Message.StartsWith("the daemon is not running: nothing listens on the control socket"));
    }

    [Test]
    public void A_permission_error_at_connect_is_worded_like_the_daemons_refusal()
    {
        Assert.That(
            ControlClient.ConnectFailure(SocketError.AccessDenied, "/run/x.sock", "mailadm", "Permission denied"),
            Is.EqualTo("permission denied: only root and members of group mailadm may use the control socket (/run/x.sock)"));
    }

    [TestCase("{\"a\":1}\nrest", "{\"a\":1}")]
    [TestCase("no newline at the end", "no newline at the end")]
    [TestCase("", null)]
    public async Task A_line_ends_at_the_first_newline_or_at_the_end(string input, string? expected)
    {
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(input));

        var line = await ControlServer.ReadLineAsync(stream, 64, CancellationToken.None);

        Assert.That(line is null ? null : Encoding.UTF8.GetString(line), Is.EqualTo(expected));
    }

    [Test]
    public async Task A_line_of_exactly_the_maximum_fits()
    {
        using var stream = new MemoryStream([.. Enumerable.Repeat((byte)'x', 64), (byte)'\n']);

        var line = await ControlServer.ReadLineAsync(stream, 64, CancellationToken.None);

        Assert.That(line, Has.Length.EqualTo(64));
    }

    /// <summary>
    /// A socket file nobody listens on, as a crashed daemon leaves it. .NET unlinks the path it bound when the socket
    /// is disposed, so the socket is bound elsewhere and moved into place.
    /// </summary>
    private void LeaveStaleSocket(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var elsewhere = Path.Combine(_directory, "bound-elsewhere.sock");
        using var stale = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        stale.Bind(new UnixDomainSocketEndPoint(elsewhere));
        File.Move(elsewhere, path);
        Assert.That(PathIdentity.Of(path)?.IsSocket, Is.True);
    }

    /// <summary>Sends bytes as they are and returns everything the server answers before closing.</summary>
    private async Task<string> RawAsync(byte[] request, bool halfClose)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(_socketPath));
        try
        {
            await socket.SendAsync(request);
        }
        catch (SocketException)
        {
            // The server may close on an oversized request before reading it all.
        }

        if (halfClose)
        {
            socket.Shutdown(SocketShutdown.Send);
        }

        using var answer = new MemoryStream();
        var buffer = new byte[4096];
        int read;
        while ((read = await socket.ReceiveAsync(buffer)) > 0)
        {
            answer.Write(buffer, 0, read);
        }

        return Encoding.UTF8.GetString(answer.ToArray());
    }
}
