using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Interceptor.Tests.Smtp.IO;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Tls;

/// <summary>Where the server side of a client's STARTTLS handshake runs: in the session's turn, a new name's minting aside.</summary>
[TestFixture]
public class ClientTlsServerTests
{
    [Test]
    public async Task After_a_certificate_minted_on_the_pool_the_handshake_goes_on_in_the_sessions_turn()
    {
        // The session's context (the fair-share scheduler's, in the daemon); a name no certificate was made for yet, whose
        // minting completes on a pool thread: SslStream would write its server flight there, outside every user's share.
        using var turn = new TurnContext();
        using var tls = TestClientCa.Server();
        using var pair = await LoopbackPair.OpenAsync();
        var recording = new WriteRecordingStream(pair.Server);
        var served = new TaskCompletionSource<SslStream>(TaskCreationOptions.RunContinuationsAsynchronously);
        turn.Post(async _ =>
        {
            try
            {
                served.SetResult(await tls.AuthenticateAsync(recording, IPAddress.Loopback, 1001, CancellationToken.None));
            }
            catch (Exception e)
            {
                served.SetException(e);
            }
        }, null);

        await using var client = new SslStream(pair.Client, leaveInnerStreamOpen: true);
        using var ca = X509CertificateLoader.LoadCertificateFromFile(TestClientCa.CertificatePath);
        await client.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "fresh.example",
            CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                CustomTrustStore = { ca },
                RevocationMode = X509RevocationMode.NoCheck,
            },
        }).WaitAsync(TimeSpan.FromSeconds(10));
        await using var server = await served.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(tls.Certificates.Minted, Is.EqualTo(1), "the name was minted for this handshake");
        Assert.That(recording.Writers, Is.Not.Empty.And.All.EqualTo("turn"), "the server's flight is written in the session's turn");
    }

    /// <summary>The accepted stream, noting which thread writes to it.</summary>
    private sealed class WriteRecordingStream(Stream inner) : Stream
    {
        public ConcurrentQueue<string> Writers { get; } = new();

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Writers.Enqueue(Thread.CurrentThread.Name ?? (Thread.CurrentThread.IsThreadPoolThread ? "pool" : "other"));
            return inner.WriteAsync(buffer, cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("the handshake writes asynchronously");

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
