using System.Text;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Pool;

namespace Interceptor.Smtp.Upstream;

/// <summary>Where opening a session stopped when the upstream refused it (the relay pool tells a bad login from a bad relay).</summary>
public enum UpstreamOpeningStep
{
    /// <summary>The greeting (or nothing refused: the session is open).</summary>
    Greeting,

    /// <summary>EHLO and HELO both refused.</summary>
    Hello,

    /// <summary>STARTTLS refused where TLS is required.</summary>
    StartTls,

    /// <summary>AUTH refused: 535 is the login's fault, anything else the relay's.</summary>
    Auth,
}

/// <summary>An opened session, or the upstream's refusal and the step that drew it.</summary>
public readonly record struct UpstreamOpening(UpstreamConnection? Connection, SmtpReply? Refusal, UpstreamOpeningStep Step);

/// <summary>The SMTP steps whose replies a <see cref="IUpstreamReplyWatcher"/> sees.</summary>
public enum UpstreamStep
{
    Mail,
    Rcpt,
    Data,
    EndOfData,
}

/// <summary>Sees every reply to MAIL, RCPT, DATA and the end of data on one session. Must not throw or block.</summary>
public interface IUpstreamReplyWatcher
{
    void Replied(UpstreamConnection connection, UpstreamStep command, SmtpReply reply);
}

/// <summary>AUTH (PLAIN, or LOGIN when only that is offered) after STARTTLS: the relay pool's per-site login.</summary>
public sealed partial class UpstreamConnection
{
    private IReadOnlyList<string> _ehloLines = [];

    /// <summary>
    /// After EHLO (and STARTTLS): with required TLS, no TLS is a failure; with a login, AUTH — never without TLS, so a
    /// relay that offers no STARTTLS (or whose handshake failed in opportunistic mode) never sees a password.
    /// </summary>
    private async Task<(SmtpReply? Refusal, UpstreamOpeningStep Step)> SecureAndAuthenticateAsync(RelayCredential? login, CancellationToken cancellationToken)
    {
        if (_settings.VerifiedTls is not null && !IsTls)
        {
            throw new UpstreamUnavailableException($"{Format(Endpoint)} offers no STARTTLS, and TLS is required");
        }

        if (login is null)
        {
            return (null, UpstreamOpeningStep.Greeting);
        }

        if (!IsTls)
        {
            throw new UpstreamUnavailableException($"{Format(Endpoint)} has no TLS session: a login is never sent in clear text");
        }

        var reply = await AuthenticateAsync(login, cancellationToken);
        return reply.Code == 235 ? (null, UpstreamOpeningStep.Greeting) : (reply, UpstreamOpeningStep.Auth);
    }

    /// <summary>
    /// AUTH PLAIN with an initial response (RFC 4616), or AUTH LOGIN when the upstream offers only that; the final reply
    /// (235 when accepted). The caller makes sure the session is encrypted; the secrets never reach a log or an exception.
    /// </summary>
    internal async Task<SmtpReply> AuthenticateAsync(RelayCredential login, CancellationToken cancellationToken)
    {
        var mechanisms = AuthMechanisms(_ehloLines);
        if (mechanisms.Contains("PLAIN") || !mechanisms.Contains("LOGIN"))
        {
            if (!mechanisms.Contains("PLAIN"))
            {
                throw new UpstreamProtocolException($"{Format(Endpoint)} offers neither AUTH PLAIN nor AUTH LOGIN");
            }

            return await CommandAsync("AUTH PLAIN " + Base64("\0" + login.RevealLogin() + "\0" + login.RevealPassword()), cancellationToken);
        }

        var reply = await CommandAsync("AUTH LOGIN", cancellationToken);
        if (reply.Code != 334)
        {
            return reply;
        }

        reply = await CommandAsync(Base64(login.RevealLogin()), cancellationToken);
        return reply.Code == 334 ? await CommandAsync(Base64(login.RevealPassword()), cancellationToken) : reply;
    }

    /// <summary>The mechanisms of the EHLO reply's AUTH line ("AUTH PLAIN LOGIN", or the old "AUTH=PLAIN LOGIN").</summary>
    internal static IReadOnlySet<string> AuthMechanisms(IReadOnlyList<string> ehloLines) =>
        ehloLines.Skip(1)
            .Where(l => l.StartsWith("AUTH ", StringComparison.OrdinalIgnoreCase) || l.StartsWith("AUTH=", StringComparison.OrdinalIgnoreCase))
            .SelectMany(l => l[5..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(m => m.ToUpperInvariant())
            .ToHashSet(StringComparer.Ordinal);

    private static string Base64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private SmtpReply Watched(UpstreamStep step, SmtpReply reply)
    {
        Watcher?.Replied(this, step, reply);
        return reply;
    }
}
