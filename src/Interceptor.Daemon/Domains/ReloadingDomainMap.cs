using Interceptor.Core.Domains;
using Interceptor.Core.Options;
using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Domains;

/// <summary>
/// The domain map of <c>Domains.Source</c>, re-read when its file changes (size, modification time or inode; checked at
/// most every <see cref="CheckInterval"/> when a message asks). Polling on use instead of a file watcher: the panels
/// replace these files by rename, which watchers on the file lose, and an idle daemon has nothing to reload for.
/// A missing or unreadable file keeps the last map read (an empty one at start) and is logged; never fatal.
/// </summary>
public sealed class ReloadingDomainMap : IDomainMapSource
{
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(2);

    private readonly DomainSource _source;
    private readonly string _path;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Lock _reload = new();
    private DomainMap _current = DomainMap.Empty;
    private (long Length, DateTime Modified, long Inode)? _seen;
    private DateTimeOffset _nextCheck;
    private bool _missingLogged;

    public ReloadingDomainMap(DomainsOptions options, ILogger logger, TimeProvider? time = null)
    {
        _source = options.Source;
        _path = PathFor(options);
        _logger = logger;
        _time = time ?? TimeProvider.System;
        Reload();
    }

    /// <summary>The file a source reads: the panel's own, unless <c>Domains.File</c> names another (a copy, a test fixture).</summary>
    public static string PathFor(DomainsOptions options) => options.File.Length > 0 ? options.File : options.Source switch
    {
        DomainSource.Cpanel => "/etc/userdomains",
        DomainSource.DirectAdmin => "/etc/virtual/domainowners",
        _ => "",
    };

    /// <summary>The map for a source; <see cref="FixedDomainMap"/> of nothing for None.</summary>
    public static IDomainMapSource For(DomainsOptions options, ILogger logger) =>
        options.Source == DomainSource.None ? new FixedDomainMap(DomainMap.Empty) : new ReloadingDomainMap(options, logger);

    public string Path => _path;

    public DomainMap Current
    {
        get
        {
            var now = _time.GetUtcNow();
            if (now >= _nextCheck)
            {
                lock (_reload)
                {
                    if (now >= _nextCheck)
                    {
                        Reload();
                    }
                }
            }

            return Volatile.Read(ref _current);
        }
    }

    private void Reload()
    {
        _nextCheck = _time.GetUtcNow() + CheckInterval;
        try
        {
            var stamp = Stamp();
            if (stamp == _seen)
            {
                return;
            }

            DomainMap map;
            using (var reader = new StreamReader(_path))
            {
                map = DomainMap.Parse(_source, reader);
            }

            foreach (var line in map.Malformed)
            {
                DomainsLog.MalformedLine(_logger, _path, line.Number, line.Problem);
            }

            DomainsLog.Loaded(_logger, _path, map.Count, map.ByUser().Count, map.Malformed.Count);
            Volatile.Write(ref _current, map);
            _seen = stamp;
            _missingLogged = false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (!_missingLogged)
            {
                DomainsLog.Unreadable(_logger, _path, e.Message, _current.Count);
                _missingLogged = true;
            }
        }
    }

    private (long, DateTime, long) Stamp()
    {
        var info = new FileInfo(_path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"{_path} does not exist");
        }

        // The inode changes when a panel replaces the file by rename within the same second and size.
        return (info.Length, info.LastWriteTimeUtc, (long)(PathIdentity.Of(_path)?.Inode ?? 0));
    }
}
