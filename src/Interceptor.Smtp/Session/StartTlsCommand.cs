using System.Net.Security;
using System.Security.Authentication;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Tls;

namespace Interceptor.Smtp.Session;

/// <summary>
/// STARTTLS on the intercepted hop (ClientTls.Mode Mint; RFC 3207). What the client sent after the command is dropped
/// before the handshake, so nothing pipelined in plain text is ever read as if it came under TLS (CVE-2011-0411); on
/// success the state table sends the session back to <see cref="SessionState.Connected"/>: a new EHLO, nothing kept.
/// A failed, refused or stalled handshake ends the session with a log line naming the user: nothing more can be said to
/// a client whose wire is half TLS.
/// </summary>
internal sealed class StartTlsCommand(SessionContext context, ClientTlsServer tls)
{
    private ClientChannel Client => context.Client;

    public async Task<StepResult> RunAsync(string argument, CancellationToken token)
    {
        if (Client.IsSecure)
        {
            await Client.WriteAsync(SessionReplies.TlsAlreadyActive, token);
            return StepResult.Failure;
        }

        if (argument.Length > 0)
        {
            await Client.WriteAsync(SessionReplies.StartTlsSyntax, token);
            return StepResult.Failure;
        }

        var discarded = Client.DiscardBuffered();
        await Client.WriteAsync(SessionReplies.StartTlsReady, token);

        var (uid, user) = (context.Origin.Uid, context.Origin.User);
        using var handshake = CancellationTokenSource.CreateLinkedTokenSource(token);
        handshake.CancelAfter(context.Timeouts.Limits.CommandLine);
        SslStream secured;
        try
        {
            secured = await tls.AuthenticateAsync(Client.Stream, context.Origin.OriginalDestination.Address, context.Origin.Uid, handshake.Token);
        }
        catch (OperationCanceledException) when (!token.IsCancellationRequested)
        {
            // Logged with its reason; the 421 it names is not written: the client is in the middle of a handshake.
            context.Timeouts.Expire(TimeoutReason.TlsHandshake);
            return StepResult.Closed;
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            // Plain text after our 220, an alert, a hello we cannot serve, a client that hung up: all the same to us.
            SessionLog.TlsHandshakeFailed(context.Logger, uid, user, e.InnerException is { } inner ? $"{e.Message} ({inner.Message})" : e.Message);
            return StepResult.Closed;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Ours, from inside the handshake (SslStream passes the certificate callback's exception on as it is): the
            // minting failed. The session ends as for any failed handshake, its line naming the user and the cause.
            SessionLog.TlsServerFailed(context.Logger, e, uid, user, $"{e.GetType().Name}: {e.Message}");
            return StepResult.Closed;
        }

        Client.Secure(secured);
        SessionLog.TlsStarted(context.Logger, uid, user, secured.SslProtocol, secured.NegotiatedCipherSuite, secured.TargetHostName, discarded);
        return StepResult.Success;
    }
}
