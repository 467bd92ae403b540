using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Options;
using Interceptor.Smtp.Upstream;

namespace Interceptor.Smtp.Pool;

/// <summary>
/// How to open a session to one relay of <c>Relay.Smarthosts</c>: its address (resolved per connection, so a changed DNS
/// record takes effect), its EHLO name and its TLS policy: Required (STARTTLS, certificate verified against
/// <c>TlsName</c> or <c>Host</c>, chained to <c>CaFile</c> when set), Opportunistic, or None.
/// </summary>
internal sealed class RelayTarget
{
    private readonly SmarthostOptions _relay;

    /// <param name="common">The Relay.* settings (timeouts, EHLO name) every relay shares.</param>
    /// <exception cref="InvalidOperationException">The relay's CaFile cannot be read or holds no certificate.</exception>
    public RelayTarget(SmarthostOptions relay, UpstreamSettings common)
    {
        _relay = relay;
        Settings = common with
        {
            HeloName = relay.HeloName.Length > 0 ? relay.HeloName : common.HeloName,
            UseStartTls = relay.Tls != SmarthostTls.None,
            VerifiedTls = relay.Tls == SmarthostTls.Required
                ? new UpstreamTlsVerification(relay.TlsName.Length > 0 ? relay.TlsName : relay.Host,
                    relay.CaFile.Length > 0 ? UpstreamTlsVerification.LoadRoots(relay.CaFile) : null)
                : null,
        };
    }

    public string Name => _relay.Name;

    public UpstreamSettings Settings { get; }

    /// <summary>
    /// Idle sessions are kept per relay and login line: one authenticated as a site is never handed to another site
    /// (users without a line of their own share the <c>*</c> login, so they may share its sessions).
    /// </summary>
    public string ReuseKeyFor(RelayCredential? login) => $"{Name}\n{login?.User ?? ""}";

    /// <summary>Connects, greets, STARTTLS per the policy, AUTH with <paramref name="login"/> when given.</summary>
    public async Task<UpstreamOpening> OpenAsync(RelayCredential? login, IUpstreamConnector connector, CancellationToken cancellationToken)
    {
        var endpoint = new IPEndPoint(await ResolveAsync(cancellationToken), _relay.Port);
        return await UpstreamConnection.OpenAsync(endpoint, Settings, connector, login, cancellationToken);
    }

    private async Task<IPAddress> ResolveAsync(CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(_relay.Host, out var literal))
        {
            return literal;
        }

        try
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            limit.CancelAfter(Settings.ConnectTimeout);
            var addresses = await Dns.GetHostAddressesAsync(_relay.Host, limit.Token);
            return addresses.OrderBy(a => a.AddressFamily == AddressFamily.InterNetwork ? 0 : 1).FirstOrDefault()
                ?? throw new UpstreamUnavailableException($"{_relay.Host} has no address");
        }
        catch (SocketException e)
        {
            throw new UpstreamUnavailableException($"{_relay.Host} does not resolve: {e.Message}", e);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new UpstreamUnavailableException($"{_relay.Host} did not resolve within {Settings.ConnectTimeout.TotalSeconds:0} s");
        }
    }
}
