package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
)

// The tags file keeps this node's tags across restarts and upgrades: tags
// set at run time (serfctl tags, Serf's RPC) are not lost. It is Serf's
// tags_file format, a JSON object of strings written 0600, so a Serf
// agent's file keeps working. Beside it, PATH.configured holds the
// configured tags the file was last written against, so that at start a
// tag the configuration changed since is applied, one it no longer sets is
// dropped unless changed at run time, and every other tag keeps its value
// from the file: the same rule as a reload (mergeTags). A Serf tags file
// without it takes the configured tags it lacks.

// loadTags returns the tags a node starts with: cfgTags merged into the
// tags file at path, if there is one.
func loadTags(path string, cfgTags map[string]string) (map[string]string, error) {
	live, ok, err := readTagsJSON(path)
	if err != nil || !ok {
		return maps.Clone(cfgTags), err
	}
	base, ok, err := readTagsJSON(path + ".configured")
	if err != nil {
		return nil, err
	}
	if !ok {
		base = map[string]string{}
		for k := range cfgTags {
			if _, inFile := live[k]; inFile {
				base[k] = cfgTags[k] // the file's value wins over a configuration it never saw
			}
		}
	}
	tags, _ := mergeTags(live, base, cfgTags)
	return tags, nil
}

// readTagsJSON reads a JSON object of strings; a missing file is not an
// error (ok false).
func readTagsJSON(path string) (map[string]string, bool, error) {
	b, err := readTrustedConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	tags := map[string]string{}
	if err := json.Unmarshal(b, &tags); err != nil {
		return nil, false, fmt.Errorf("tags file %s is not a JSON object of strings: %v", path, err)
	}
	return tags, true, nil
}

// saveTags writes tags, and the configured tags they were set against,
// each replacing its file whole (temporary file, fsync, rename).
func saveTags(path string, tags, cfgTags map[string]string) error {
	for p, v := range map[string]map[string]string{path: tags, path + ".configured": cfgTags} {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFileAtomic(p, append(b, '\n'), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic replaces path with data: readers see the old file or the
// new one, never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// persistTags saves the node's live tags, set against the configured
// cfgTags, when a tags file is in use (the one serfd started with); a
// failure is logged (the tags are set, they just may not survive a
// restart).
func (d *daemon) persistTags(tags, cfgTags map[string]string) {
	path := d.cfg.TagsFile
	if path == "" {
		return
	}
	if err := saveTags(path, tags, cfgTags); err != nil {
		d.log.Error("tags not saved; they will not survive a restart", "FILE", path, "ERROR", err.Error())
	}
}
