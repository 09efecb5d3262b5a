package dataset_test

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/refonte"
)

func Example() {
	const csv = "attachment,geometries:json,metadata.source\n" +
		"https://img.example.com/1.jpg,\"{\"\"box\"\":{\"\"objects_to_annotate\"\":[\"\"car\"\"]}}\",cam-1\n" +
		"ftp://img.example.com/2.jpg,\"{\"\"box\"\":{\"\"objects_to_annotate\"\":[\"\"car\"\"]}}\",cam-2\n"
	r, err := dataset.NewReader(strings.NewReader(csv), "images.csv", dataset.Options{
		Format:   dataset.FormatCSV,
		TaskType: refonte.TypeImageAnnotation,
		Project:  "traffic",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	rejects := dataset.NewRejectsWriter(os.Stdout)
	defer rejects.Flush()
	for {
		row, rej, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err) // fatal: stop
			return
		}
		if rej != nil {
			rejects.Write(rej) // invalid row: record it and go on
			continue
		}
		fmt.Printf("line %d %s %s\n%s\n", row.Line, row.Type, row.UniqueID, row.Body)
	}
	// Output:
	// line 2 imageannotation rb1_990fac06ad2283384f5aa7a14bafe5b9
	// {"attachment":"https://img.example.com/1.jpg","geometries":{"box":{"objects_to_annotate":["car"]}},"metadata":{"source":"cam-1"},"project":"traffic","unique_id":"rb1_990fac06ad2283384f5aa7a14bafe5b9"}
	// {"line":3,"error":"attachment: must be an http(s) URL, got \"ftp://img.example.com/2.jpg\"","raw":"ftp://img.example.com/2.jpg,\"{\"\"box\"\":{\"\"objects_to_annotate\"\":[\"\"car\"\"]}}\",cam-2"}
}
